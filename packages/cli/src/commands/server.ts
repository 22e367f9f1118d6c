// escp server: the peer that `escp` starts over ssh (or as its loopback child). It speaks the
// control protocol on stdin/stdout; users do not run it by hand.
import { Command } from '@oclif/core'
import { runServerOnStdio } from '@escp/core'

export default class Server extends Command {
  static override hidden = true
  static override summary = 'Serve one transfer on stdin/stdout (started by escp over ssh)'

  override async run(): Promise<void> {
    const code = await runServerOnStdio(`escp ${this.config.version}`)
    process.stdin.destroy()
    if (code !== 0) this.exit(code)
  }
}
