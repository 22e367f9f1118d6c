// Ctrl-C, SIGTERM and SIGHUP stop a copy in order: the transfer stops, the side that receives
// removes the files it has not finished (the loopback child, or `escp server` over ssh, does
// so for a push), and the command exits with status 130. A second signal exits at once.
import { escpError } from '@escp/core/loopback'

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

let controller: AbortController | undefined

/** The signal a copy stops on; the first call installs the handlers. */
export function copyStopSignal(): AbortSignal {
  if (!controller) {
    const c = new AbortController()
    controller = c
    const stop = (name: NodeJS.Signals) => {
      if (c.signal.aborted) process.exit(130)
      c.abort(escpError('ESCP_ERR_INTERRUPTED', name))
    }
    for (const name of STOP_SIGNALS) process.on(name, stop)
  }
  return controller.signal
}
