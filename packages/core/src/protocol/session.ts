// Opening a session: the SessionInit/SessionAccept exchange on the control channel, then the
// meta stream and N data streams, each authenticated with keys derived from the secret that
// only the control channel carried.
import { escpError, isEscpError, remoteError } from '../errors'
import type { EscpError } from '../errors'
import type { Cipher } from '../contracts/cipher'
import type { PluginRegistry } from '../plugins/registry'
import { HELLO_TIMEOUT_MS, MAX_BLOCK_BYTES, MAX_DATA_STREAMS, MAX_QUEUE_DEPTH, MIN_BLOCK_BYTES, NONCE_BYTES, PROTOCOL_MAJOR, PROTOCOL_MINOR, SESSION_ID_BYTES, SESSION_SECRET_BYTES, TAG_BYTES } from './constants'
import type { ControlChannel } from './control-channel'
import { connectStreams } from './data-connector'
import { listenForStreams } from './data-listener'
import { newSessionId, newSessionSecret } from './keys'
import type { SessionKeys } from './keys'
import type { Capabilities, SessionAccept, SessionInit } from './messages'
import type { SecureStream } from './secure-stream'

export const HANDSHAKE_TIMEOUT_MS = 30_000

export interface Session {
  init: SessionInit
  accept: SessionAccept
  keys: SessionKeys
  /** Stream 0. */
  meta: SecureStream
  /** Streams 1..N. */
  data: SecureStream[]
  /**
   * The protocol minor version in use: the lower of the two sides' (the peer's comes in
   * SessionAccept on the client, in SessionInit on the server). A side uses a 1.x addition
   * only when this minor includes it.
   */
  sharedMinor: number
}

/** What the client asks for; identity, secret and version are filled in by startClientSession. */
export type SessionRequest = Omit<SessionInit, 'protocolMajor' | 'protocolMinor' | 'sessionId' | 'secret' | 'capabilities'>

/** Names of the plugins of each kind that can run here, to tell the peer. */
export function capabilitiesOf(registry: PluginRegistry): Capabilities {
  const names = (kind: 'cipher' | 'compressor' | 'checksum' | 'engine') =>
    registry.list(kind).filter((e) => e.availability.ok).map((e) => e.name)
  return { ciphers: names('cipher'), compressors: names('compressor'), checksums: names('checksum'), engines: names('engine') }
}

export function versionString(major: number, minor: number): string {
  return `${major}.${minor}`
}

export interface ClientSessionOptions {
  /** Where the data streams go when the server listens on a wildcard address. */
  serverHost?: string
  timeoutMs?: number
  localAddress?: string
  /** Keep data streams sealed after their hello so worker threads can take them over. */
  detachDataStreams?: boolean
  /** The minor version to speak, PROTOCOL_MINOR unless an older one is wanted (to act as an older peer). */
  protocolMinor?: number
}

/** The client's half: send SessionInit, take SessionAccept, open and authenticate the streams. */
export async function startClientSession(
  channel: ControlChannel,
  registry: PluginRegistry,
  request: SessionRequest,
  options: ClientSessionOptions = {},
): Promise<Session> {
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS
  const init: SessionInit = {
    ...request,
    protocolMajor: PROTOCOL_MAJOR,
    protocolMinor: options.protocolMinor ?? PROTOCOL_MINOR,
    sessionId: newSessionId(),
    secret: newSessionSecret(),
    capabilities: capabilitiesOf(registry),
  }
  await channel.send({ kind: 'init', init })
  const reply = await channel.receive(timeoutMs, "the server's SessionAccept")
  if (reply.kind === 'fatal') throw remoteError(reply.fatal.code, reply.fatal.message)
  if (reply.kind !== 'accept') throw escpError('ESCP_ERR_PROTOCOL', `expected SessionAccept, got ${reply.kind}`)
  const accept = reply.accept
  try {
    const cipher = checkAccept(init, accept, registry)
    const keys: SessionKeys = { secret: init.secret, sessionId: init.sessionId, cipher }
    const address = isWildcard(accept.address) ? (options.serverHost ?? '127.0.0.1') : accept.address
    const [meta, ...data] = await connectStreams({
      keys,
      address,
      port: accept.port,
      streams: init.streams,
      blockSizeBytes: init.blockSizeBytes,
      timeoutMs: HELLO_TIMEOUT_MS,
      localAddress: options.localAddress,
      detachDataStreams: options.detachDataStreams,
    })
    return { init, accept, keys, meta, data, sharedMinor: Math.min(accept.protocolMinor, init.protocolMinor) }
  } catch (err) {
    // Tell the server, so it stops waiting for streams that will not come.
    throw await refuse(channel, err as EscpError)
  }
}

// A SessionAccept must stay inside what was asked: the version, an offered cipher, a port in
// the range, and the address asked for when one was.
function checkAccept(init: SessionInit, accept: SessionAccept, registry: PluginRegistry): Cipher {
  if (accept.protocolMajor !== PROTOCOL_MAJOR) {
    throw escpError('ESCP_ERR_VERSION_MISMATCH', versionString(PROTOCOL_MAJOR, PROTOCOL_MINOR), `${versionString(accept.protocolMajor, accept.protocolMinor)} (${accept.software})`)
  }
  if (!init.ciphers.includes(accept.cipher)) throw escpError('ESCP_ERR_PROTOCOL', `the server chose the cipher '${accept.cipher}', which was not offered`)
  if (accept.port < init.port || accept.port >= init.port + init.portRange) {
    throw escpError('ESCP_ERR_PROTOCOL', `the server listens on port ${accept.port}, outside the range ${init.port}-${init.port + init.portRange - 1}`)
  }
  if (init.bindAddress && !isWildcard(init.bindAddress) && accept.address !== init.bindAddress) {
    throw escpError('ESCP_ERR_PROTOCOL', `the server listens on ${accept.address}, not on ${init.bindAddress} as asked`)
  }
  return registry.resolve('cipher', accept.cipher)
}

export interface ServerSessionOptions {
  software: string
  /** Address to listen on when SessionInit names none. */
  defaultAddress: string
  timeoutMs?: number
  helloTimeoutMs?: number
  /** Told the port before the streams connect (tests, logs). */
  onListening?: (address: string, port: number) => void
  /** Keep data streams sealed after their hello so worker threads can take them over. */
  detachDataStreams?: boolean
  /** Checks a SessionInit before any port is bound (e.g. the destination); a throw is sent as Fatal. */
  validate?: (init: SessionInit) => Promise<void>
}

/** The server's half: check SessionInit, bind inside the port range, accept the streams. */
export async function acceptServerSession(channel: ControlChannel, registry: PluginRegistry, options: ServerSessionOptions): Promise<Session> {
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS
  const first = await channel.receive(timeoutMs, "the client's SessionInit")
  if (first.kind !== 'init') {
    throw await refuse(channel, escpError('ESCP_ERR_PROTOCOL', `expected SessionInit, got ${first.kind}`))
  }
  const init = first.init
  let cipher: Cipher
  try {
    cipher = checkInit(init, registry)
    await options.validate?.(init)
  } catch (err) {
    throw await refuse(channel, err as EscpError)
  }
  const keys: SessionKeys = { secret: init.secret, sessionId: init.sessionId, cipher }
  const address = init.bindAddress || options.defaultAddress
  let listener
  try {
    listener = await listenForStreams({
      keys,
      address,
      port: init.port,
      portRange: init.portRange,
      streams: init.streams,
      blockSizeBytes: init.blockSizeBytes,
      helloTimeoutMs: options.helloTimeoutMs,
      detachDataStreams: options.detachDataStreams,
    })
  } catch (err) {
    throw await refuse(channel, err as EscpError)
  }
  options.onListening?.(address, listener.port)
  const accept: SessionAccept = {
    protocolMajor: PROTOCOL_MAJOR,
    protocolMinor: PROTOCOL_MINOR,
    software: options.software,
    address,
    port: listener.port,
    cipher: cipher.name,
    capabilities: capabilitiesOf(registry),
  }
  await channel.send({ kind: 'accept', accept })
  let timer: NodeJS.Timeout | undefined
  try {
    const streams = await Promise.race([
      listener.streams,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(escpError('ESCP_ERR_TIMEOUT', 'the data streams connecting', timeoutMs)), timeoutMs)
      }),
      // The client gives up with a Fatal when it cannot connect or dislikes our answer.
      channel.receive(undefined, 'the data streams').then((m) => {
        throw m.kind === 'fatal' ? remoteError(m.fatal.code, m.fatal.message) : escpError('ESCP_ERR_PROTOCOL', `a ${m.kind} message while the streams connect`)
      }),
    ])
    const [meta, ...data] = streams
    return { init, accept, keys, meta, data, sharedMinor: Math.min(init.protocolMinor, PROTOCOL_MINOR) }
  } catch (err) {
    listener.close()
    throw err
  } finally {
    clearTimeout(timer)
  }
}

// Validates a SessionInit and picks the cipher; throws the error to send back as Fatal.
function checkInit(init: SessionInit, registry: PluginRegistry): Cipher {
  if (init.protocolMajor !== PROTOCOL_MAJOR) {
    throw escpError('ESCP_ERR_VERSION_MISMATCH', versionString(PROTOCOL_MAJOR, PROTOCOL_MINOR), `${versionString(init.protocolMajor, init.protocolMinor)} (${init.software})`)
  }
  if (init.secret.byteLength !== SESSION_SECRET_BYTES) throw escpError('ESCP_ERR_PROTOCOL', `a session secret of ${init.secret.byteLength} bytes`)
  if (init.sessionId.byteLength !== SESSION_ID_BYTES) throw escpError('ESCP_ERR_PROTOCOL', `a session id of ${init.sessionId.byteLength} bytes`)
  if (init.blockSizeBytes < MIN_BLOCK_BYTES || init.blockSizeBytes > MAX_BLOCK_BYTES) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `block size ${init.blockSizeBytes} is outside ${MIN_BLOCK_BYTES}-${MAX_BLOCK_BYTES} bytes`)
  }
  if (init.streams < 1 || init.streams > MAX_DATA_STREAMS) throw escpError('ESCP_ERR_BAD_ARGUMENT', `${init.streams} streams; escp takes 1 to ${MAX_DATA_STREAMS}`)
  if (init.queueDepth < 1 || init.queueDepth > MAX_QUEUE_DEPTH) throw escpError('ESCP_ERR_BAD_ARGUMENT', `a queue depth of ${init.queueDepth}; escp takes 1 to ${MAX_QUEUE_DEPTH}`)
  if (init.compressor !== 'none') registry.resolve('compressor', init.compressor)
  if (init.checksum !== 'none') registry.resolve('checksum', init.checksum)
  // Records use 12-byte nonces and 16-byte tags; a cipher plugin of other sizes cannot serve.
  const usable = init.ciphers.find((name) => {
    if (!registry.has('cipher', name) || !registry.list('cipher').find((e) => e.name === name)?.availability.ok) return false
    const c = registry.get('cipher', name)
    return c.nonceLengthBytes === NONCE_BYTES && c.tagLengthBytes === TAG_BYTES
  })
  if (!usable) {
    throw escpError('ESCP_ERR_NEGOTIATION', `the client offers the ciphers ${init.ciphers.join(', ') || '(none)'}; this side has ${capabilitiesOf(registry).ciphers.join(', ')}`)
  }
  return registry.get('cipher', usable)
}

async function refuse(channel: ControlChannel, err: EscpError): Promise<EscpError> {
  const e = isEscpError(err) ? err : escpError('ESCP_ERR_PROTOCOL', String(err))
  await channel.send({ kind: 'fatal', fatal: { code: e.code, message: e.message } }).catch(() => {})
  return e
}

function isWildcard(address: string): boolean {
  return address === '' || address === '0.0.0.0' || address === '::'
}
