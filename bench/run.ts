// `npm run bench -- <suite> [options]`: runs one benchmark suite from bench/suites/.
import { UsageError } from './lib/args'
import { loadSuite, suiteNames } from './lib/suites'

const USAGE = 'usage: npm run bench -- <suite> [options]'

async function main(argv: string[]): Promise<number> {
  const names = suiteNames()
  const list = `suites: ${names.length ? names.join(', ') : '(none)'}`
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    const usages = await Promise.all(names.map(async (n) => ({ n, usage: (await loadSuite(n)).usage })))
    console.log(`${USAGE}\n${list}${usages.map(({ n, usage }) => (usage ? `\n\n${n} options:\n${usage}` : '')).join('')}`)
    return 0
  }
  if (argv.length === 0 || argv[0].startsWith('-')) {
    console.error(`escp bench: ${argv.length === 0 ? 'no suite given' : `a suite's name comes first, got '${argv[0]}'`}\n${USAGE}\n${list}`)
    return 2
  }
  const [name, ...args] = argv
  if (!names.includes(name)) {
    console.error(`escp bench: unknown suite '${name}'; ${list}`)
    return 2
  }
  try {
    await (await loadSuite(name)).run(args)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`escp bench: ${err.message}\n${USAGE} (npm run bench -- --help lists each suite's options)`)
    return 2
  }
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // A suite that fails is a bug to chase, so show where it failed.
    console.error(`escp bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exitCode = 1
  },
)
