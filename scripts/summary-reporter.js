'use strict'
// mocha's spec reporter, plus one closing line "N passed, N failed[, N skipped]" that CI reads.
const Mocha = require('mocha')
const { Spec } = Mocha.reporters
const { EVENT_RUN_END } = Mocha.Runner.constants

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats
      const skipped = s.pending ? `, ${s.pending} skipped` : ''
      process.stdout.write(`\n${s.passes} passed, ${s.failures} failed${skipped}\n`)
    })
  }
}

module.exports = SummaryReporter
