// A pull driven from the test process: a loopback server sends `source`, and this process
// receives it, speaking the protocol minor version the test chooses, through the real Receiver
// and receiver links.
import { expect } from 'chai'
import { Receiver, linkSettings, protocol, receivingWrites, resolveDestination, sessionRequest, spawnLoopbackServer, startReceiverLinks } from '@escp/core'
import type { PluginSet, TransferOptions } from '@escp/core'
import { within } from './hostile-sender'

export interface PullEngines {
  /** The server's engine, which reads the source. */
  server: string
  /** This side's engine, which writes the destination. */
  client: string
}

/**
 * Pulls `source` into `destination` with options `o` (a free port range among them), this side
 * speaking protocol 1.`minor`: the receiver's result, and whether the server's SessionDone says
 * the session succeeded.
 */
export async function pullSpeaking(set: PluginSet, o: TransferOptions, minor: number, source: string, destination: string, engines: PullEngines): Promise<{ result: Awaited<ReturnType<Receiver['run']>>; ok: boolean }> {
  const server = spawnLoopbackServer(set.spec.modules.slice(1))
  const channel = new protocol.ControlChannel(server.stdout, server.stdin, { side: 'client' })
  try {
    const session = await protocol.startClientSession(channel, set.registry, sessionRequest(o, 'sender', [source], 1, engines.server), {
      detachDataStreams: true,
      serverHost: '127.0.0.1',
      protocolMinor: minor,
    })
    expect(session.sharedMinor).to.equal(minor)
    const resolved = await resolveDestination(destination, 1)
    const engine = set.registry.resolve('engine', engines.client)
    const receiver = new Receiver(session, {
      destination: resolved,
      checksum: set.registry.resolve('checksum', o.checksum),
      engine,
      blockSizeBytes: o.blockSizeBytes,
      preserve: false,
    })
    const writes = await receivingWrites(engine, resolved.guard.rootPath, o.direct)
    const links = await startReceiverLinks(session, linkSettings(session.init, set, 'client', engines.client), writes, receiver)
    const r = await within(receiver.run(links), 30_000, 'the pull')
    const done = await channel.receive(30_000, "the server's SessionDone")
    if (done.kind !== 'done') throw new Error(`expected SessionDone, got ${done.kind}`)
    return { result: r, ok: done.done.ok }
  } finally {
    channel.close()
    server.stdin.end()
    await server.exited
  }
}
