// The server side's own log (EScp's X.server): JSON lines through pino, opened by `escp server
// --logfile FILE` or, for a loopback child, ESCP_LOGFILE. A log that cannot be opened is said on
// stderr and the session goes on without it: logging never fails a transfer. pino is loaded
// only when a log is opened.
import type pinoModule from 'pino'
import { LOGFILE_ENV } from '../env-names'

/** What the server logs through; a pino logger is one. Nothing secret is ever passed to it. */
export interface SessionLog {
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

export { LOGFILE_ENV }

/** A JSON-lines log appended to `file` (directories created), or undefined if it cannot be opened. */
export function openSessionLog(file: string, side: 'server' | 'client' = 'server'): SessionLog | undefined {
  try {
    // Loaded only for a log: pino and its streams cost a server some 10 ms of start-up.
    const pino = require('pino') as typeof pinoModule
    return pino({ base: { pid: process.pid, side } }, pino.destination({ dest: file, sync: true, append: true, mkdir: true }))
  } catch (err) {
    process.stderr.write(`escp ${side}: cannot write the log '${file}' (${(err as Error).message}); going on without it\n`)
    return undefined
  }
}
