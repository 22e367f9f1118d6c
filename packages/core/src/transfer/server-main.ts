// Entry point of the loopback child, a server process on stdin/stdout (server-run). It starts its
// stream workers before it loads the rest of escp: a worker's start-up (a Node environment, then
// escp and its plugins) is the longest part of a server's, and overlaps the process's own that
// way. Measured on 2 cores, a one-byte local copy: 317 → 285 ms.
import { LOGFILE_ENV } from '../env-names'
import { tierOnceStreamsRun } from './loopback-child'
import { bootFromEnv } from './worker-boot'

if (require.main === module) {
  // The loopback child tiers its code as the escp command does (V8_FLAGS and
  // tierOnceStreamsRun say why and when); asked here rather than on its command line, which a
  // Node without one of the flags would refuse.
  tierOnceStreamsRun()
  const booted = bootFromEnv()
  // Loaded once the workers are on their way.
  const { runServerOnStdio } = require('./server-run') as typeof import('./server-run')
  const { openSessionLog } = require('./session-log') as typeof import('./session-log')
  const { version } = require('../../package.json') as { version: string }
  const logFile = process.env[LOGFILE_ENV]
  const log = logFile ? openSessionLog(logFile) : undefined
  runServerOnStdio(`escp ${version}`, [], { ...(log ? { log } : {}), ...(booted ? { booted } : {}) }).then((code) => {
    process.exitCode = code
    process.stdin.destroy()
  })
}
