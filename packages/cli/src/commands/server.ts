// escp server: the peer that `escp` starts over ssh (or as its loopback child). It speaks the
// control protocol on stdin/stdout; users do not run it by hand.
import { Command, Flags } from '@oclif/core'
import { runServerOnStdio, runServerOnUnixSocket } from '@escp/core'
import { escpPluginModules } from './engines'

export default class Server extends Command {
  static override hidden = true
  static override summary = 'Serve one transfer on stdin/stdout (started by escp over ssh)'
  static override flags = {
    mgmt: Flags.string({ description: 'serve the control channel on this Unix socket instead (for debugging)' }),
  }

  override async run(): Promise<void> {
    const { flags } = await this.parse(Server)
    const software = `escp ${this.config.version}`
    // Plugins installed with `escp plugins` serve remote sessions too.
    const plugins = escpPluginModules(this.config.plugins.values())
    const code = flags.mgmt ? await runServerOnUnixSocket(flags.mgmt, software, plugins) : await runServerOnStdio(software, plugins)
    process.stdin.destroy()
    if (code !== 0) this.exit(code)
  }
}
