// The server's side of the data plane: it listens only on the address it was asked for and
// only inside [port, port + range), takes exactly streams + 1 authenticated connections (the
// meta stream 0 and data streams 1..N), and drops anything else: a connection that does not
// open with a valid hello in time, a duplicate or out-of-range stream index, a wrong session.
import net from 'node:net'
import { escpError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import { HELLO_TIMEOUT_MS, RecordType, STREAM_MAGIC, STREAM_PREFIX_BYTES, PROTOCOL_MAJOR } from './constants'
import type { SessionKeys } from './keys'
import { expectHello, readExactly, SecureStream, streamPrefix } from './secure-stream'

export interface DataListenerOptions {
  keys: SessionKeys
  address: string
  port: number
  portRange: number
  /** Data streams, not counting the meta stream. */
  streams: number
  blockSizeBytes: number
  helloTimeoutMs?: number
  /** Connections allowed to be in their hello at once; more are refused. */
  maxPendingHellos?: number
  /** Data streams (not the meta stream) keep their records sealed for SecureStream.detach(). */
  detachDataStreams?: boolean
  /** Told about every refused connection (for logs and tests). */
  onRejected?: (reason: EscpError) => void
}

export interface DataListener {
  readonly address: string
  readonly port: number
  /** Resolves with streams indexed 0 (meta) .. N once all have said hello. */
  readonly streams: Promise<SecureStream[]>
  close(): void
}

export async function listenForStreams(options: DataListenerOptions): Promise<DataListener> {
  // allowHalfOpen: each side ends its own direction with END; the other may still send its own.
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true })
  const port = await bindInRange(server, options.address, options.port, options.portRange)
  const helloTimeoutMs = options.helloTimeoutMs ?? HELLO_TIMEOUT_MS
  const maxPending = options.maxPendingHellos ?? 4 * (options.streams + 1)
  const total = options.streams + 1
  const accepted: (SecureStream | undefined)[] = new Array(total).fill(undefined)
  const sockets = new Set<net.Socket>()
  let count = 0
  let pending = 0
  let closed = false

  let settle!: { resolve: (s: SecureStream[]) => void; reject: (e: Error) => void }
  const streams = new Promise<SecureStream[]>((resolve, reject) => (settle = { resolve, reject }))
  streams.catch(() => {})

  const reject = (socket: net.Socket, reason: EscpError) => {
    socket.destroy()
    options.onRejected?.(reason)
  }

  server.on('connection', (socket) => {
    if (closed || pending >= maxPending) {
      reject(socket, escpError('ESCP_ERR_PROTOCOL', closed ? 'a connection after all streams were accepted' : 'too many connections waiting for their hello'))
      return
    }
    pending++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    void admit(socket).finally(() => pending--)
  })

  async function admit(socket: net.Socket): Promise<void> {
    const started = Date.now()
    let stream: SecureStream | undefined
    try {
      const { head, rest } = await readExactly(socket, STREAM_PREFIX_BYTES, helloTimeoutMs)
      const index = head.readUInt16BE(10)
      if (!head.subarray(0, 8).equals(STREAM_MAGIC)) throw escpError('ESCP_ERR_PROTOCOL', 'not an escp stream')
      if (head.readUInt16BE(8) !== PROTOCOL_MAJOR) {
        throw escpError('ESCP_ERR_VERSION_MISMATCH', `${PROTOCOL_MAJOR}`, `${head.readUInt16BE(8)}`)
      }
      if (!head.subarray(12).equals(Buffer.from(options.keys.sessionId))) throw escpError('ESCP_ERR_PROTOCOL', 'a stream of another session')
      if (index >= total) throw escpError('ESCP_ERR_PROTOCOL', `stream index ${index} outside 0..${total - 1}`)
      if (accepted[index]) throw escpError('ESCP_ERR_PROTOCOL', `stream ${index} is already open`)
      stream = new SecureStream(socket, { index, keys: options.keys, side: 'server', blockSizeBytes: options.blockSizeBytes, detachAfterHello: options.detachDataStreams === true && index > 0 }, rest)
      await expectHello(stream, head, Math.max(1, helloTimeoutMs - (Date.now() - started)))
      // Checked again: another connection may have claimed the index while this one said hello.
      if (accepted[index] || closed) throw escpError('ESCP_ERR_PROTOCOL', `stream ${index} is already open`)
      await stream.sendMessage(RecordType.Hello, streamPrefix(options.keys.sessionId, index))
      accepted[index] = stream
      if (++count === total) {
        closed = true
        server.close()
        settle.resolve(accepted as SecureStream[])
      }
    } catch (err) {
      const e = isEscpError(err) ? err : escpError('ESCP_ERR_PROTOCOL', String(err))
      if (stream) stream.destroy(e)
      reject(socket, e)
    }
  }

  return {
    address: options.address,
    port,
    streams,
    close() {
      server.close()
      if (count === total) return
      // The session failed before it began: drop the streams already accepted too.
      closed = true
      settle.reject(escpError('ESCP_ERR_STREAM_CLOSED', 'the listener was closed before every stream connected'))
      for (const s of accepted) s?.destroy()
      for (const s of sockets) s.destroy()
    },
  }
}

/** Binds the first free port in [first, first + range) on `address`, and nowhere else. */
export async function bindInRange(server: net.Server, address: string, first: number, range: number): Promise<number> {
  if (!Number.isInteger(first) || first < 1 || first > 65535 || !Number.isInteger(range) || range < 1 || first + range - 1 > 65535) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `port range ${first}+${range} is not within 1-65535`)
  }
  for (let port = first; port < first + range; port++) {
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => {
          server.off('listening', onListening)
          reject(err)
        }
        const onListening = () => {
          server.off('error', onError)
          resolve()
        }
        server.once('error', onError)
        server.once('listening', onListening)
        server.listen({ host: address, port, exclusive: true, backlog: 64 })
      })
      return port
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EADDRINUSE' || code === 'EACCES') continue
      throw escpError('ESCP_ERR_BIND', `${address}:${port}`, (err as Error).message)
    }
  }
  throw escpError('ESCP_ERR_PORT_RANGE_FULL', address, first, first + range - 1)
}
