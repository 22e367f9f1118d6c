// The client's side of the data plane: opens the meta stream and N data streams to the
// server's port, each with its hello, and waits for the server's hello back on each.
import net from 'node:net'
import { escpError, isEscpError } from '../errors'
import { HELLO_TIMEOUT_MS, RecordType } from './constants'
import type { SessionKeys } from './keys'
import { expectHello, SecureStream, streamPrefix } from './secure-stream'

export interface ConnectOptions {
  keys: SessionKeys
  address: string
  port: number
  streams: number
  blockSizeBytes: number
  timeoutMs?: number
  /** Local address to connect from (multi-homed hosts). */
  localAddress?: string
  /** Data streams (not the meta stream) keep their records sealed for SecureStream.detach(). */
  detachDataStreams?: boolean
}

export async function connectStreams(options: ConnectOptions): Promise<SecureStream[]> {
  const total = options.streams + 1
  const opened = await Promise.allSettled(Array.from({ length: total }, (_, i) => connectOne(options, i)))
  const failed = opened.find((r) => r.status === 'rejected')
  if (failed) {
    for (const r of opened) if (r.status === 'fulfilled') r.value.destroy()
    throw (failed as PromiseRejectedResult).reason
  }
  return opened.map((r) => (r as PromiseFulfilledResult<SecureStream>).value)
}

async function connectOne(options: ConnectOptions, index: number): Promise<SecureStream> {
  const timeoutMs = options.timeoutMs ?? HELLO_TIMEOUT_MS
  const target = `${options.address}:${options.port}`
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: options.address, port: options.port, localAddress: options.localAddress, allowHalfOpen: true })
    const timer = setTimeout(() => {
      s.destroy()
      reject(escpError('ESCP_ERR_CONNECT', target, `no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.removeAllListeners('error')
      resolve(s)
    })
    s.once('error', (err) => {
      clearTimeout(timer)
      reject(escpError('ESCP_ERR_CONNECT', target, (err as Error).message))
    })
  })
  const stream = new SecureStream(socket, { index, keys: options.keys, side: 'client', blockSizeBytes: options.blockSizeBytes, detachAfterHello: options.detachDataStreams === true && index > 0 })
  const prefix = streamPrefix(options.keys.sessionId, index)
  try {
    socket.write(prefix)
    await stream.sendMessage(RecordType.Hello, prefix)
    await expectHello(stream, prefix, timeoutMs)
  } catch (err) {
    stream.destroy()
    throw isEscpError(err) ? err : escpError('ESCP_ERR_CONNECT', target, String(err))
  }
  return stream
}
