// escp server: the peer that `escp` starts over ssh (or as its loopback child). It speaks the
// control protocol on stdin/stdout; users do not run it by hand.
import { Command, Flags } from '@oclif/core'
import { CPUMASK_ENV, PLUGIN_OPTIONS_ENV, openSessionLog, parsePluginOption, pluginOptionsFromEnv, runServerOnStdio, runServerOnUnixSocket } from '@escp/core'
import { configFiles, loadConfig } from '../config'
import Copy from './copy'
import { escpPluginModules } from './engines'

export default class Server extends Command {
  static override hidden = true
  static override summary = 'Serve one transfer on stdin/stdout (started by escp over ssh)'
  static override flags = {
    mgmt: Flags.string({ description: 'serve the control channel on this Unix socket instead (for debugging)' }),
    logfile: Flags.string({ description: 'append a JSON log of the session to FILE' }),
  }

  override async run(): Promise<void> {
    const { flags } = await this.parse(Server)
    // This host's CPU set for its stream workers, and its plugins' options, come from its own
    // config, as each host knows its CPUs and its storage; the environment wins.
    // Plugin options merge name by name, the environment's over the config's.
    try {
      const config = loadConfig(configFiles(), new Set(Object.keys(Copy.flags)))
      const mask = config.cpumask
      if (mask !== undefined) process.env[CPUMASK_ENV] ??= String(mask)
      const options = config['plugin-option']
      if (options !== undefined) {
        const pairs = (Array.isArray(options) ? options : [options]).map((o) => parsePluginOption(String(o)))
        process.env[PLUGIN_OPTIONS_ENV] = JSON.stringify({ ...Object.fromEntries(pairs), ...pluginOptionsFromEnv() })
      }
    } catch (err) {
      process.stderr.write(`escp server: ${(err as Error).message}\n`)
      this.exit(1)
    }
    const software = `escp ${this.config.version}`
    // Plugins installed with `escp plugins` serve remote sessions too.
    const plugins = escpPluginModules(this.config.plugins.values())
    const log = flags.logfile ? openSessionLog(flags.logfile) : undefined
    const run = log ? { log } : {}
    const code = flags.mgmt ? await runServerOnUnixSocket(flags.mgmt, software, plugins, run) : await runServerOnStdio(software, plugins, run)
    process.stdin.destroy()
    if (code !== 0) this.exit(code)
  }
}
