// escp server: the peer that `escp` starts over ssh (or as its loopback child). It speaks the
// control protocol on stdin/stdout; users do not run it by hand. The entry point serves it
// without oclif where it can (server-start.ts); this command runs it otherwise.
import { Command, Flags } from '@oclif/core'
import { serve } from '../server-start'
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
    // Plugins installed with `escp plugins` serve remote sessions too.
    const code = await serve(flags, `escp ${this.config.version}`, escpPluginModules(this.config.plugins.values()))
    if (code !== 0) this.exit(code)
  }
}
