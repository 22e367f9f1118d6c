// Options after a suite's name (`npm run bench -- transfer --runs 5`), parsed strictly so
// that a typo stops the run instead of silently measuring something else.
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'

/** A mistake on the command line: run.ts prints it with the usage, not as a crash. */
export class UsageError extends Error {}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>

export function parseSuiteArgs<O extends OptionsConfig>(suite: string, args: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new UsageError(`${suite}: ${(err as Error).message}`)
  }
}

/** A whole number ≥ `min` from an option's text, or the default when the option was not given. */
export function integerOption(suite: string, name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${suite}: --${name} takes a whole number ≥ ${min}, got '${text}'`)
  return n
}
