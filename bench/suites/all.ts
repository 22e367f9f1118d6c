// Every suite in turn, one at a time (two benchmarks at once would measure each other), then
// the chart. Options are not passed on: each suite runs with its defaults.
import { loadSuite, suiteNames } from '../lib/suites'

export const usage = '  (no options: runs every other suite with its defaults, then redraws the chart)'

const FIRST = ['primitives', 'protocol', 'transfer', 'wan', 'sweep']

export async function run(args: readonly string[] = []): Promise<void> {
  if (args.length > 0) throw new Error(`all takes no options (got ${args.join(' ')}); run a suite by name to pass options`)
  const rest = suiteNames().filter((n) => n !== 'all' && n !== 'chart' && !FIRST.includes(n))
  for (const name of [...FIRST.filter((n) => suiteNames().includes(n)), ...rest, 'chart']) {
    process.stdout.write(`\n=== npm run bench -- ${name}\n`)
    await (await loadSuite(name)).run([])
  }
}
