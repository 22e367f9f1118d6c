#!/usr/bin/env node
'use strict'
// escp's entry point: scp-style argv is normalised (the copy command is the default), then
// oclif runs the command, unless the entry point can run it alone.

// How V8 tiers escp's code once a session's stream workers run (V8_FLAGS and
// tierOnceStreamsRun say why and when).
require('@escp/core/loopback').tierOnceStreamsRun()

// libuv's pool serves every file operation of every stream worker; it must be sized before its
// first use. Measured on 2 cores: 1 thread beats 4 (4 writers of one file spin on its inode lock).
if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = require('../dist/pool-size').defaultPoolSize()
const { normalizeArgv } = require('../dist/argv')
const args = normalizeArgv(process.argv.slice(2))
// A copy stops in order on Ctrl-C, SIGTERM or SIGHUP from its first moment (stop-signals.ts).
if (args[0] === 'copy') require('../dist/stop-signals').copyStopSignal()
// A local copy's receiver child starts now, and loads while this process loads oclif; so do
// the stream workers of this process, for a local copy or as a server told how many come; and
// ssh, for a copy to or from a remote host.
const prestart = require('../dist/prestart')
if (!prestart.prestartForServer(args) && !prestart.prestartForLocalCopy(args) && prestart.mayBeRemoteCopy(args)) {
  require('../dist/prestart-remote').prestartForRemoteCopy(args)
}
require('reflect-metadata')

// `escp server` as ssh starts it, and a copy whose command line reads plainly, run without
// oclif, which they do not need (server-start.ts, copy-start.ts).
const server = args[0] === 'server' ? require('../dist/server-start') : undefined
const flags = server && server.serverFlagsWithoutOclif(args)
const copy = args[0] === 'copy' ? require('../dist/copy-start') : undefined
const copyArgs = copy && copy.copyArgsWithoutOclif(args)
if (flags) {
  server.serveWithoutOclif(flags).then((code) => {
    process.exitCode = code
  })
} else if (copyArgs) {
  // Once the copy is over, nothing of it is left to wait for (a pacing timer, a plugin's
  // handle): the command exits, as oclif's does on a failure. Its output is already written
  // (stdout and stderr are synchronous for files, pipes and terminals on Linux).
  copy.copyWithoutOclif(copyArgs).then((code) => process.exit(code))
} else {
  ;(async () => {
    const oclif = await import('@oclif/core')
    await oclif.execute({ dir: __dirname, args })
  })()
}
