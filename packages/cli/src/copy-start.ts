// The copy command run by the entry point without oclif, for a command line it can read
// exactly as oclif would; anything else (help, an unknown, repeated or malformed flag, a bad
// config file, a plugin installed through oclif) is left to oclif, which reads and reports it
// as always. Loading oclif, its plugins and its config costs a copy some 60 ms and 0.12 CPU s
// on 2 cores (a one-byte local copy: 0.30 s through oclif, 0.24 s through copy()).
import { bundledPluginModules } from './bundled'
import { configFiles } from './config'
import { runCopyCommand, withConfigDefaults } from './copy-command'
import { readCopyWords } from './copy-flags'
import type { CopyArgs } from './copy-flags'
import { pluginsMayBeInstalled } from './server-start'

/**
 * The copy's operands and flags when the entry point can run `args` (normalized: 'copy' first)
 * itself: no plugin installed through oclif, a config that loads, and a command line
 * readCopyWords reads, with nothing that prints instead of copying (--license).
 */
export function copyArgsWithoutOclif(args: readonly string[], env: NodeJS.ProcessEnv = process.env): CopyArgs | null {
  if (args[0] !== 'copy' || pluginsMayBeInstalled(env)) return null
  let words: string[]
  try {
    words = withConfigDefaults(args.slice(1), configFiles(env))
  } catch {
    return null
  }
  const read = readCopyWords(words)
  return read && !read.flags.license ? read : null
}

/** Runs the copy with the plugins the command ships; resolves to the exit status. */
export function copyWithoutOclif(read: CopyArgs): Promise<number> {
  return runCopyCommand(read.operands, read.flags, bundledPluginModules())
}
