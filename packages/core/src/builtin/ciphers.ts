// AEAD ciphers from node:crypto (OpenSSL). One GCM/Poly1305 message per record: a cipher
// object cannot be re-keyed or re-IV'd, so each record gets its own. That is not free: at 1 MiB
// records seal reaches 56-75% of `openssl speed` (aes-128-gcm lowest; bench/RESULTS.md,
// primitives). The likely main cost is the fresh output buffer update() allocates per record;
// the set-up of the cipher object has not been measured on its own.
import crypto from 'node:crypto'
import { escpError } from '../errors'
import { AVAILABLE, unavailable } from '../contracts/availability'
import type { Availability } from '../contracts/availability'
import type { Cipher, CipherKey, SealedRecord } from '../contracts/cipher'

// chacha20-poly1305 takes the same calls as GCM; the casts below only satisfy @types/node.
type NodeAead = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305'

interface NodeCipherKey extends CipherKey {
  secret: crypto.KeyObject
}

const NONCE_BYTES = 12
const TAG_BYTES = 16

export class NodeAeadCipher implements Cipher {
  readonly nonceLengthBytes = NONCE_BYTES
  readonly tagLengthBytes = TAG_BYTES

  constructor(
    readonly name: NodeAead,
    readonly keyLengthBytes: number,
  ) {}

  available(): Availability {
    return crypto.getCiphers().includes(this.name)
      ? AVAILABLE
      : unavailable(`this Node.js (OpenSSL ${process.versions.openssl}) has no ${this.name}`)
  }

  createKey(raw: Uint8Array): CipherKey {
    if (raw.byteLength !== this.keyLengthBytes) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `${this.name} needs a ${this.keyLengthBytes}-byte key, got ${raw.byteLength} bytes`)
    }
    const key: NodeCipherKey = { cipher: this.name, secret: crypto.createSecretKey(raw) }
    return key
  }

  seal(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): SealedRecord {
    const c = crypto.createCipheriv(this.name as crypto.CipherGCMTypes, this.secretOf(key), this.checkNonce(nonce), { authTagLength: TAG_BYTES })
    c.setAAD(aad)
    const ciphertext = c.update(plain)
    const rest = c.final()
    // GCM and ChaCha20-Poly1305 are stream modes: final() never holds back bytes.
    if (rest.length !== 0) throw new Error(`${this.name}: unexpected ${rest.length} bytes from final()`)
    return { ciphertext, tag: c.getAuthTag() }
  }

  open(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array {
    if (tag.byteLength !== TAG_BYTES) throw escpError('ESCP_ERR_AUTH', `a ${this.name} record (tag of ${tag.byteLength} bytes)`)
    const d = crypto.createDecipheriv(this.name as crypto.CipherGCMTypes, this.secretOf(key), this.checkNonce(nonce), { authTagLength: TAG_BYTES })
    d.setAAD(aad)
    d.setAuthTag(tag)
    const plain = d.update(ciphertext)
    try {
      d.final()
    } catch {
      throw escpError('ESCP_ERR_AUTH', `a ${this.name} record`)
    }
    return plain
  }

  private secretOf(key: CipherKey): crypto.KeyObject {
    if (key.cipher !== this.name) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `a ${key.cipher} key was given to ${this.name}`)
    }
    return (key as NodeCipherKey).secret
  }

  private checkNonce(nonce: Uint8Array): Uint8Array {
    if (nonce.byteLength !== NONCE_BYTES) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', `${this.name} needs a ${NONCE_BYTES}-byte nonce, got ${nonce.byteLength} bytes`)
    }
    return nonce
  }
}

export function builtinCiphers(): Cipher[] {
  return [
    new NodeAeadCipher('aes-128-gcm', 16),
    new NodeAeadCipher('aes-256-gcm', 32),
    new NodeAeadCipher('chacha20-poly1305', 32),
  ]
}
