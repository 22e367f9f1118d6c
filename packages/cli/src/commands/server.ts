// escp server: the peer that `escp` starts over ssh (or as its loopback child). It speaks the
// control protocol on stdin/stdout; users do not run it by hand.
import { Command, Flags } from '@oclif/core'
import { CPUMASK_ENV, openSessionLog, runServerOnStdio, runServerOnUnixSocket } from '@escp/core'
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
    // This host's CPU set for its stream workers comes from its own config, as each host knows
    // its CPUs; the environment wins.
    if (process.env[CPUMASK_ENV] === undefined) {
      try {
        const mask = loadConfig(configFiles(), new Set(Object.keys(Copy.flags))).cpumask
        if (mask !== undefined) process.env[CPUMASK_ENV] = String(mask)
      } catch (err) {
        process.stderr.write(`escp server: ${(err as Error).message}\n`)
        this.exit(1)
      }
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
