// `npm run bench -- <suite>`: runs one benchmark suite from bench/suites/.
import { loadSuite, suiteNames } from './lib/suites'

const USAGE = 'usage: npm run bench -- <suite>'

async function main(argv: string[]): Promise<number> {
  const names = suiteNames()
  const list = `suites: ${names.length ? names.join(', ') : '(none)'}`
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) {
    console.log(`${USAGE}\n${list}`)
    return 0
  }
  if (argv.length !== 1) {
    console.error(`escp bench: ${argv.length === 0 ? 'no suite given' : `one suite at a time, got '${argv.join(' ')}'`}\n${USAGE}\n${list}`)
    return 2
  }
  if (!names.includes(argv[0])) {
    console.error(`escp bench: unknown suite '${argv[0]}'; ${list}`)
    return 2
  }
  await (await loadSuite(argv[0])).run()
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
