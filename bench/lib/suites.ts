// Benchmark suites are the files in bench/suites/: a suite's name is its file name, so adding
// a suite means adding one file, and the list a user sees is the list of files that exist.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

export const SUITES_DIR = path.resolve(__dirname, '..', 'suites')

/** What a file in bench/suites/ exports. */
export interface BenchSuite {
  /** `args`: what followed the suite's name on the command line. */
  run(args: readonly string[]): Promise<void>
  /** One line per option the suite takes, for --help. */
  usage?: string
}

/** Names of the suites that exist, sorted. */
export function suiteNames(): string[] {
  return fs
    .readdirSync(SUITES_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .sort()
}

/** Loads the suite named `name`, one of suiteNames(). */
export async function loadSuite(name: string): Promise<BenchSuite> {
  const file = path.join(SUITES_DIR, `${name}.ts`)
  const mod = (await import(pathToFileURL(file).href)) as Partial<BenchSuite> & { default?: Partial<BenchSuite> }
  const run = mod.run ?? mod.default?.run
  if (typeof run !== 'function') throw new Error(`${path.relative(process.cwd(), file)} does not export run()`)
  return { run, usage: mod.usage ?? mod.default?.usage }
}
