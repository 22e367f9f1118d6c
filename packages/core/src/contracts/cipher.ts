// The AEAD contract. escp seals every record on the wire with one of these; the nonce is an
// implicit record counter, so implementations must never be called twice with one key+nonce.
import type { InjectionToken } from 'tsyringe'
import type { Availability } from './availability'

/** A key prepared for one cipher (e.g. an expanded key schedule); opaque to callers. */
export interface CipherKey {
  readonly cipher: string
}

export interface SealedRecord {
  ciphertext: Uint8Array
  tag: Uint8Array
}

export interface Cipher {
  readonly name: string
  readonly keyLengthBytes: number
  readonly nonceLengthBytes: number
  readonly tagLengthBytes: number
  available(): Availability
  /** Prepares a key of keyLengthBytes; throws ESCP_ERR_BAD_ARGUMENT on a wrong length. */
  createKey(raw: Uint8Array): CipherKey
  /** Encrypts `plain`, authenticating `aad` too. Ciphertext and tag come apart so they can be written without a copy. */
  seal(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): SealedRecord
  /** Decrypts and verifies; throws ESCP_ERR_AUTH when anything was altered. */
  open(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): Uint8Array
  /**
   * Optional: seal() that writes where it is told. The ciphertext goes into `out`, which is
   * `plain` itself (in place) or at least as long and apart from it; the tag goes into `tag`
   * (tagLengthBytes). A cipher that has it lets the data path seal records without a new buffer
   * per record.
   */
  sealInto?(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Uint8Array, tag: Uint8Array): void
  /**
   * Optional: open() that writes where it is told (`out` as for sealInto). Throws ESCP_ERR_AUTH
   * when anything was altered; `out` then holds bytes that must not be used.
   */
  openInto?(key: CipherKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): void
}

export const CIPHER: InjectionToken<Cipher> = Symbol.for('escp:cipher')
