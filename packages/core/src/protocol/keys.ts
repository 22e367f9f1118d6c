// Key schedule: one key per stream, per direction and per epoch, all derived with HKDF-SHA256
// from the session secret, which only ever crosses the control channel. Separate keys make a
// record from one stream or direction useless on any other.
import crypto from 'node:crypto'
import { escpError } from '../errors'
import type { Cipher, CipherKey } from '../contracts/cipher'
import { NONCE_BYTES, PROTOCOL_MAJOR, SESSION_ID_BYTES, SESSION_SECRET_BYTES } from './constants'

/** Client-to-server or server-to-client. */
export type Direction = 'c2s' | 's2c'

export interface SessionKeys {
  secret: Uint8Array
  sessionId: Uint8Array
  cipher: Cipher
}

export function newSessionSecret(): Buffer {
  return crypto.randomBytes(SESSION_SECRET_BYTES)
}

export function newSessionId(): Buffer {
  return crypto.randomBytes(SESSION_ID_BYTES)
}

export function deriveKey(keys: SessionKeys, streamIndex: number, direction: Direction, epoch: number): CipherKey {
  if (keys.secret.byteLength !== SESSION_SECRET_BYTES) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `a session secret must be ${SESSION_SECRET_BYTES} bytes`)
  }
  const info = `escp/${PROTOCOL_MAJOR} ${keys.cipher.name} stream=${streamIndex} dir=${direction} epoch=${epoch}`
  const raw = crypto.hkdfSync('sha256', keys.secret, keys.sessionId, info, keys.cipher.keyLengthBytes)
  return keys.cipher.createKey(new Uint8Array(raw))
}

/** The nonce is implicit: four zero bytes and the 64-bit record counter of the key. */
export function nonceFor(counter: bigint, into: Buffer = Buffer.alloc(NONCE_BYTES)): Buffer {
  into.writeUInt32BE(0, 0)
  into.writeBigUInt64BE(counter, 4)
  return into
}
