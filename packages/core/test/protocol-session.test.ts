// Sessions over real loopback sockets: the handshake, the port range, the hello, and the
// faults a network or a hostile client produces.
import net from 'node:net'
import { PassThrough } from 'node:stream'
import { expect } from 'chai'
import { loadPlugins, protocol } from '@escp/core'
import type { EscpError, PluginRegistry } from '@escp/core'
import { expectCode } from '@escp/core/testing'

const { ControlChannel, RecordType } = protocol
const BLOCK = 1 << 20
let nextPort = 23000 + (process.pid % 2000) * 10

/** A fresh range of ports for one test, so tests never trip over each other's listeners. */
function ports(): number {
  nextPort += 20
  return nextPort
}

/** Two control channels joined back to back, as ssh's stdio would join them. */
function controlPair(): { client: protocol.ControlChannel; server: protocol.ControlChannel } {
  const c2s = new PassThrough()
  const s2c = new PassThrough()
  return {
    server: new ControlChannel(c2s, s2c, { side: 'server' }),
    client: new ControlChannel(s2c, c2s, { side: 'client' }),
  }
}

function request(port: number, overrides: Partial<protocol.SessionRequest> = {}): protocol.SessionRequest {
  return {
    software: 'escp test', serverRole: 'receiver', ciphers: ['aes-128-gcm'], compressor: 'none', compressionLevel: 0,
    checksum: 'xxh64', serverEngine: 'node-fs', blockSizeBytes: BLOCK, streams: 4, bindAddress: '127.0.0.1',
    port, portRange: 5, preserve: false, sparse: false, direct: false, recursive: false, paths: ['/tmp'], sourceCount: 1, queueDepth: 4, rateLimit: 0,
    ...overrides,
  }
}

function closed(socket: net.Socket): Promise<number> {
  const start = Date.now()
  return new Promise((resolve) => {
    socket.on('error', () => {})
    socket.once('close', () => resolve(Date.now() - start))
  })
}

function connectRaw(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => resolve(s))
    s.once('error', reject)
  })
}

describe('wire sessions over loopback', function () {
  let registry: PluginRegistry

  before(async function () {
    registry = (await loadPlugins()).registry
  })

  async function openSession(port: number, overrides: Partial<protocol.SessionRequest> = {}) {
    const { client, server } = controlPair()
    const serverSide = protocol.acceptServerSession(server, registry, { software: 'escp test', defaultAddress: '127.0.0.1' })
    const clientSide = protocol.startClientSession(client, registry, request(port, overrides))
    const [s, c] = await Promise.all([serverSide, clientSide])
    return { server: s, client: c }
  }

  it('opens a meta stream and N data streams and carries records both ways', async function () {
    const port = ports()
    const { server, client } = await openSession(port, { streams: 4, ciphers: ['chacha20-poly1305', 'aes-128-gcm'] })
    expect(server.accept.port).to.be.within(port, port + 4)
    expect(server.keys.cipher.name).to.equal('chacha20-poly1305')
    expect(client.data).to.have.length(4)
    expect(server.data.map((s) => s.index)).to.deep.equal([1, 2, 3, 4])
    const payload = Buffer.alloc(BLOCK, 0x5a)
    await Promise.all(client.data.map((s, i) => s.send({ type: RecordType.Block, flags: 0, rawLength: BLOCK, fileId: BigInt(i), offset: 0n }, payload)))
    for (const [i, s] of server.data.entries()) {
      const r = await s.next()
      expect(r.done).to.equal(false)
      expect(r.value?.fileId).to.equal(BigInt(i))
      expect(Buffer.from(r.value!.payload).equals(payload)).to.equal(true)
    }
    await server.meta.sendMessage(RecordType.Verdicts, protocol.encodeVerdicts([{ id: 1n, ok: true, digest: new Uint8Array(8) }]))
    const v = await client.meta.next()
    expect(protocol.decodeVerdicts(v.value!.payload)[0].ok).to.equal(true)
    for (const s of [client.meta, ...client.data]) await s.end()
    for (const s of [server.meta, ...server.data]) {
      expect((await s.next()).done).to.equal(true)
      await s.end()
    }
    for (const s of [client.meta, ...client.data]) expect((await s.next()).done).to.equal(true)
  })

  it('refuses a client of another major version, naming both versions', async function () {
    const { client, server } = controlPair()
    const serverSide = protocol.acceptServerSession(server, registry, { software: 'escp test', defaultAddress: '127.0.0.1' })
    const init = { ...request(ports()), protocolMajor: 2, protocolMinor: 3, sessionId: protocol.newSessionId(), secret: protocol.newSessionSecret(), capabilities: protocol.capabilitiesOf(registry) }
    await client.send({ kind: 'init', init })
    const reply = await client.receive(5000)
    expect(reply.kind).to.equal('fatal')
    if (reply.kind !== 'fatal') return
    expect(reply.fatal.code).to.equal('ESCP_ERR_VERSION_MISMATCH')
    expect(reply.fatal.message).to.contain(protocol.versionString(protocol.PROTOCOL_MAJOR, protocol.PROTOCOL_MINOR)).and.contain('2.3')
    await expectCode(() => serverSide, 'ESCP_ERR_VERSION_MISMATCH')
  })

  it('reports a server refusal to the client under the server\'s code', async function () {
    const { client, server } = controlPair()
    const serverSide = protocol.acceptServerSession(server, registry, { software: 'escp test', defaultAddress: '127.0.0.1' })
    const clientSide = protocol.startClientSession(client, registry, request(ports(), { ciphers: ['rot13'] }))
    await expectCode(() => clientSide, 'ESCP_ERR_NEGOTIATION')
    await expectCode(() => serverSide, 'ESCP_ERR_NEGOTIATION')
  })

  it('gives a clear error when every port of the range is taken', async function () {
    const port = ports()
    const blockers = await Promise.all([0, 1].map((i) => new Promise<net.Server>((resolve) => {
      const s = net.createServer()
      s.listen(port + i, '127.0.0.1', () => resolve(s))
    })))
    try {
      const { client, server } = controlPair()
      const serverSide = protocol.acceptServerSession(server, registry, { software: 'escp test', defaultAddress: '127.0.0.1' })
      const clientSide = protocol.startClientSession(client, registry, request(port, { portRange: 2 }))
      const err = (await expectCode(() => clientSide, 'ESCP_ERR_PORT_RANGE_FULL')) as Error
      expect(err.message).to.contain(`${port}-${port + 1}`)
      await expectCode(() => serverSide, 'ESCP_ERR_PORT_RANGE_FULL')
    } finally {
      blockers.forEach((b) => b.close())
    }
  })

  describe('the data listener', function () {
    let keys: protocol.SessionKeys
    beforeEach(function () {
      keys = { secret: protocol.newSessionSecret(), sessionId: protocol.newSessionId(), cipher: registry.resolve('cipher', 'aes-128-gcm') }
    })

    it('listens only on the address it was given', async function () {
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 1, blockSizeBytes: BLOCK })
      try {
        const err = await connectRaw(listener.port, '127.0.0.2').then((s) => (s.destroy(), undefined), (e: NodeJS.ErrnoException) => e)
        expect(err?.code).to.equal('ECONNREFUSED')
      } finally {
        listener.close()
      }
    })

    it('drops a client that connects and sends nothing, within the hello timeout', async function () {
      const rejected: EscpError[] = []
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 1, blockSizeBytes: BLOCK, helloTimeoutMs: 300, onRejected: (e) => rejected.push(e) })
      try {
        const s = await connectRaw(listener.port)
        const ms = await closed(s)
        expect(ms).to.be.within(200, 3000)
        expect(rejected[0]?.code).to.equal('ESCP_ERR_TIMEOUT')
      } finally {
        listener.close()
      }
    })

    it('drops a client that knows the session id but not the secret', async function () {
      const rejected: EscpError[] = []
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 1, blockSizeBytes: BLOCK, onRejected: (e) => rejected.push(e) })
      try {
        const wrong = { ...keys, secret: protocol.newSessionSecret() }
        await expectCode(() => protocol.connectStreams({ keys: wrong, address: '127.0.0.1', port: listener.port, streams: 0, blockSizeBytes: BLOCK, timeoutMs: 2000 }), 'ESCP_ERR_STREAM_CLOSED')
        expect(rejected.map((e) => e.code)).to.include('ESCP_ERR_AUTH')
      } finally {
        listener.close()
      }
    })

    it('accepts each stream index once and no more streams than expected', async function () {
      const rejected: EscpError[] = []
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 1, blockSizeBytes: BLOCK, onRejected: (e) => rejected.push(e) })
      try {
        const [meta] = await protocol.connectStreams({ keys, address: '127.0.0.1', port: listener.port, streams: 0, blockSizeBytes: BLOCK })
        // Stream 0 again: refused.
        await expectCode(() => protocol.connectStreams({ keys, address: '127.0.0.1', port: listener.port, streams: 0, blockSizeBytes: BLOCK, timeoutMs: 2000 }), 'ESCP_ERR_STREAM_CLOSED')
        expect(rejected.at(-1)?.message).to.contain('already open')
        const streams = await protocol.connectStreams({ keys, address: '127.0.0.1', port: listener.port, streams: 1, blockSizeBytes: BLOCK, timeoutMs: 2000 }).catch((e) => e)
        expect((streams as EscpError).code).to.equal('ESCP_ERR_STREAM_CLOSED') // stream 0 is a duplicate, so the set fails
        meta.destroy()
      } finally {
        listener.close()
      }
    })

    it('refuses connections once every stream is in', async function () {
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 1, blockSizeBytes: BLOCK })
      const client = await protocol.connectStreams({ keys, address: '127.0.0.1', port: listener.port, streams: 1, blockSizeBytes: BLOCK })
      const server = await listener.streams
      try {
        const err = await connectRaw(listener.port).then(async (s) => (await closed(s), 'closed'), (e: NodeJS.ErrnoException) => e.code)
        expect(err).to.be.oneOf(['ECONNREFUSED', 'closed'])
      } finally {
        ;[...client, ...server].forEach((s) => s.destroy())
      }
    })

    it('fails a stream that dies in the middle of a record, without hanging', async function () {
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 0, blockSizeBytes: BLOCK })
      const raw = await connectRaw(listener.port)
      const prefix = protocol.streamPrefix(keys.sessionId, 0)
      const sealer = new protocol.RecordSealer(keys, 0, 'c2s')
      raw.write(prefix)
      for (const f of sealer.seal({ type: RecordType.Hello, flags: 0, rawLength: 0, fileId: 0n, offset: 0n }, prefix)) for (const b of f) raw.write(b)
      const [meta] = await listener.streams
      const [[h, ct]] = sealer.seal({ type: RecordType.FileBatch, flags: 0, rawLength: 0, fileId: 0n, offset: 0n }, Buffer.alloc(5000, 1))
      raw.write(h)
      raw.end(Buffer.from(ct).subarray(0, 1000))
      const err = (await expectCode(() => meta.next(), 'ESCP_ERR_STREAM_CLOSED')) as Error
      expect(err.message).to.contain('middle of a record')
    })

    it('fails a stream whose bytes are altered in flight, and closes it', async function () {
      const listener = await protocol.listenForStreams({ keys, address: '127.0.0.1', port: ports(), portRange: 3, streams: 0, blockSizeBytes: BLOCK })
      // A proxy that, once armed, flips one bit of the next chunk it forwards to the server.
      let armed = false
      const sockets: net.Socket[] = []
      const proxy = net.createServer((inbound) => {
        const outbound = net.connect(listener.port, '127.0.0.1')
        sockets.push(inbound, outbound)
        inbound.on('data', (c: Buffer) => {
          if (armed) {
            c[c.byteLength - 1] ^= 1
            armed = false
          }
          outbound.write(c)
        })
        outbound.pipe(inbound)
        inbound.on('error', () => outbound.destroy())
        outbound.on('error', () => inbound.destroy())
        inbound.on('close', () => outbound.destroy())
      })
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
      try {
        const port = (proxy.address() as net.AddressInfo).port
        const [client] = await protocol.connectStreams({ keys, address: '127.0.0.1', port, streams: 0, blockSizeBytes: BLOCK })
        const [server] = await listener.streams
        armed = true
        await client.sendMessage(RecordType.Keepalive)
        await expectCode(() => server.next(), 'ESCP_ERR_AUTH')
        await expectCode(() => client.next(), 'ESCP_ERR_STREAM_CLOSED')
      } finally {
        proxy.close()
        sockets.forEach((s) => s.destroy())
      }
    })
  })

  describe('the control channel', function () {
    it('explains text a remote shell printed before escp started', async function () {
      const input = new PassThrough()
      const channel = new ControlChannel(input, new PassThrough(), { side: 'client' })
      input.write('Welcome to host dtn2!\n')
      input.write(protocol.CONTROL_PREAMBLE)
      const err = (await expectCode(() => channel.receive(1000), 'ESCP_ERR_REMOTE_NOISE')) as Error
      expect(err.message).to.contain('Welcome to host dtn2!')
    })

    it('refuses a frame that claims 2^31 bytes', async function () {
      const input = new PassThrough()
      const channel = new ControlChannel(input, new PassThrough(), { side: 'client' })
      const len = Buffer.alloc(4)
      len.writeUInt32BE(2 ** 31)
      input.write(Buffer.concat([protocol.CONTROL_PREAMBLE, len]))
      await expectCode(() => channel.receive(1000), 'ESCP_ERR_PROTOCOL')
    })

    it('reports a peer that closes before escp starts, with what it printed', async function () {
      const input = new PassThrough()
      const channel = new ControlChannel(input, new PassThrough(), { side: 'client' })
      input.end('sh: 1: escp: not found\n')
      const err = (await expectCode(() => channel.receive(1000), 'ESCP_ERR_CONTROL_CLOSED')) as Error
      expect(err.message).to.contain('escp: not found')
    })

    it('times out a silent peer', async function () {
      const channel = new ControlChannel(new PassThrough(), new PassThrough(), { side: 'client' })
      await expectCode(() => channel.receive(100), 'ESCP_ERR_TIMEOUT')
    })
  })
})
