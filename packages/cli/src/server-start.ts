// `escp server`'s work, shared by the oclif command and by the entry point's own start of it.
// The entry point serves without loading oclif wherever oclif would add nothing: a command line
// of only --mgmt and --logfile, and no plugin installed with `escp plugins` (those are known to
// oclif alone). That start is on the critical path of every copy over ssh: loading oclif and its
// config cost the server 80-110 ms on 2 cores, before it could answer the client.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { CPUMASK_ENV, PLUGIN_OPTIONS_ENV, openSessionLog, parsePluginOption, pluginOptionsFromEnv, runServerOnStdio, runServerOnUnixSocket } from '@escp/core'
import { bundledPluginModules } from './bundled'
import { configFiles, loadConfig } from './config'
import { COPY_FLAGS } from './copy-flags'

export interface ServerFlags {
  mgmt?: string
  logfile?: string
}

/**
 * Serves one session as `escp server` does: this host's CPU set and plugin options from its
 * own config (the environment wins; a key that is not a copy flag is refused, as the command
 * refuses it), then the control channel on stdio or on the --mgmt socket. Returns the exit status.
 */
export async function serve(flags: ServerFlags, software: string, plugins: readonly string[]): Promise<number> {
  try {
    const config = loadConfig(configFiles(), new Set(Object.keys(COPY_FLAGS)))
    const mask = config.cpumask
    if (mask !== undefined) process.env[CPUMASK_ENV] ??= String(mask)
    const options = config['plugin-option']
    if (options !== undefined) {
      // Plugin options merge name by name, the environment's over the config's.
      const pairs = (Array.isArray(options) ? options : [options]).map((o) => parsePluginOption(String(o)))
      process.env[PLUGIN_OPTIONS_ENV] = JSON.stringify({ ...Object.fromEntries(pairs), ...pluginOptionsFromEnv() })
    }
  } catch (err) {
    process.stderr.write(`escp server: ${(err as Error).message}\n`)
    return 1
  }
  const log = flags.logfile ? openSessionLog(flags.logfile) : undefined
  const run = log ? { log } : {}
  const code = flags.mgmt ? await runServerOnUnixSocket(flags.mgmt, software, plugins, run) : await runServerOnStdio(software, plugins, run)
  process.stdin.destroy()
  return code
}

/**
 * The flags of `args` (normalized: 'server' first) when the entry point can serve them itself:
 * only --mgmt and --logfile, each once with a value, and no plugin installed through oclif;
 * null when oclif must run the command (for its help, its errors, or its plugins).
 */
export function serverFlagsWithoutOclif(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerFlags | null {
  if (args[0] !== 'server' || pluginsMayBeInstalled(env)) return null
  const flags: ServerFlags = {}
  for (let i = 1; i < args.length; i++) {
    const m = /^--(mgmt|logfile)(?:=(.*))?$/s.exec(args[i])
    if (!m) return null
    const name = m[1] as keyof ServerFlags
    const value = m[2] ?? args[++i]
    if (value === undefined || value === '' || flags[name] !== undefined) return null
    flags[name] = value
  }
  return flags
}

/**
 * Whether `escp plugins install` or `link` may have put a plugin where oclif looks: its data
 * directory's package.json, found as oclif finds it (ESCP_DATA_DIR, else XDG_DATA_HOME/escp,
 * else ~/.local/share/escp). Elsewhere than Linux and its kin oclif looks in other places, so
 * the answer is yes.
 */
export function pluginsMayBeInstalled(env: NodeJS.ProcessEnv): boolean {
  if (process.platform === 'win32') return true
  const home = env.HOME || os.homedir()
  const dirs = [env.ESCP_DATA_DIR, path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'escp')]
  return dirs.some((d) => d !== undefined && d !== '' && fs.existsSync(path.join(d, 'package.json')))
}

/** Serves `flags` without oclif, with the plugins the command ships; resolves to the exit status. */
export function serveWithoutOclif(flags: ServerFlags): Promise<number> {
  const { version } = require('../package.json') as { version: string }
  return serve(flags, `escp ${version}`, bundledPluginModules())
}
