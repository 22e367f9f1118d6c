#!/usr/bin/env node
'use strict'
// escp's entry point: scp-style argv is normalised (the copy command is the default), then
// oclif runs the command.
require('reflect-metadata')
const { normalizeArgv } = require('../dist/argv')

;(async () => {
  const oclif = await import('@oclif/core')
  await oclif.execute({ dir: __dirname, args: normalizeArgv(process.argv.slice(2)) })
})()
