#!/usr/bin/env node
'use strict'
// A remote "escp server" of a future major version, for tests: it answers SessionInit with a
// SessionAccept that speaks protocol 2.0. A 1.x client must refuse it by name.
const path = require('node:path')
const { protocol } = require(path.resolve(__dirname, '..', '..', 'packages', 'core'))

const channel = new protocol.ControlChannel(process.stdin, process.stdout, { side: 'server' })
channel.receive(10_000).then(async (m) => {
  if (m.kind !== 'init') process.exit(2)
  await channel.send({
    kind: 'accept',
    accept: { protocolMajor: 2, protocolMinor: 0, software: 'escp 2.0.0', address: '127.0.0.1', port: m.init.port, cipher: m.init.ciphers[0], capabilities: m.init.capabilities },
  })
  // Wait for the client's Fatal (or the channel closing), then go.
  await channel.receive(10_000).catch(() => {})
  process.exit(0)
}, () => process.exit(1))
