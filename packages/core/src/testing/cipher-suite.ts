// Compliance suite for the Cipher contract; every cipher plugin runs it in its own tests.
import crypto from 'node:crypto'
import { expect } from 'chai'
import type { Cipher } from '../contracts/cipher'
import { expectCode, skipIfUnavailable } from './helpers'

export function cipherCompliance(label: string, make: () => Cipher | Promise<Cipher>): void {
  describe(`Cipher compliance: ${label}`, function () {
    let cipher: Cipher
    const aad = Buffer.from('record-header-as-aad')

    before(async function () {
      cipher = await make()
      skipIfUnavailable(this, `cipher '${cipher.name}'`, cipher.available())
    })

    function fresh(): { key: Uint8Array; nonce: Uint8Array } {
      return { key: crypto.randomBytes(cipher.keyLengthBytes), nonce: crypto.randomBytes(cipher.nonceLengthBytes) }
    }

    for (const size of [0, 1, 4095, 65536, 1 << 20]) {
      it(`round-trips ${size} bytes`, function () {
        const { key, nonce } = fresh()
        const k = cipher.createKey(key)
        const plain = crypto.randomBytes(size)
        const sealed = cipher.seal(k, nonce, aad, plain)
        expect(sealed.ciphertext.byteLength).to.equal(size)
        expect(sealed.tag.byteLength).to.equal(cipher.tagLengthBytes)
        expect(Buffer.from(cipher.open(k, nonce, aad, sealed.ciphertext, sealed.tag)).equals(plain)).to.equal(true)
      })
    }

    it('produces ciphertext that differs from the plaintext and per nonce', function () {
      const { key, nonce } = fresh()
      const k = cipher.createKey(key)
      const plain = Buffer.alloc(4096, 7)
      const a = cipher.seal(k, nonce, aad, plain)
      const b = cipher.seal(k, crypto.randomBytes(cipher.nonceLengthBytes), aad, plain)
      expect(Buffer.from(a.ciphertext).equals(plain)).to.equal(false)
      expect(Buffer.from(a.ciphertext).equals(b.ciphertext)).to.equal(false)
    })

    it('rejects any flipped byte of ciphertext, tag or AAD', async function () {
      const { key, nonce } = fresh()
      const k = cipher.createKey(key)
      const plain = crypto.randomBytes(1024)
      const { ciphertext, tag } = cipher.seal(k, nonce, aad, plain)
      for (let i = 0; i < ciphertext.byteLength; i += 37) {
        const bad = Buffer.from(ciphertext)
        bad[i] ^= 0x01
        await expectCode(() => cipher.open(k, nonce, aad, bad, tag), 'ESCP_ERR_AUTH')
      }
      for (let i = 0; i < tag.byteLength; i++) {
        const bad = Buffer.from(tag)
        bad[i] ^= 0x80
        await expectCode(() => cipher.open(k, nonce, aad, ciphertext, bad), 'ESCP_ERR_AUTH')
      }
      for (let i = 0; i < aad.byteLength; i++) {
        const bad = Buffer.from(aad)
        bad[i] ^= 0x10
        await expectCode(() => cipher.open(k, nonce, bad, ciphertext, tag), 'ESCP_ERR_AUTH')
      }
    })

    it('rejects a truncated tag or ciphertext', async function () {
      const { key, nonce } = fresh()
      const k = cipher.createKey(key)
      const { ciphertext, tag } = cipher.seal(k, nonce, aad, crypto.randomBytes(100))
      await expectCode(() => cipher.open(k, nonce, aad, ciphertext, tag.subarray(0, tag.byteLength - 1)), 'ESCP_ERR_AUTH')
      await expectCode(() => cipher.open(k, nonce, aad, ciphertext.subarray(1), tag), 'ESCP_ERR_AUTH')
    })

    it('rejects the wrong key and the wrong nonce', async function () {
      const { key, nonce } = fresh()
      const { ciphertext, tag } = cipher.seal(cipher.createKey(key), nonce, aad, crypto.randomBytes(100))
      const other = cipher.createKey(crypto.randomBytes(cipher.keyLengthBytes))
      await expectCode(() => cipher.open(other, nonce, aad, ciphertext, tag), 'ESCP_ERR_AUTH')
      const otherNonce = Buffer.from(nonce)
      otherNonce[otherNonce.byteLength - 1] ^= 1
      await expectCode(() => cipher.open(cipher.createKey(key), otherNonce, aad, ciphertext, tag), 'ESCP_ERR_AUTH')
    })

    it('refuses keys and nonces of the wrong length', async function () {
      await expectCode(() => cipher.createKey(Buffer.alloc(cipher.keyLengthBytes - 1)), 'ESCP_ERR_BAD_ARGUMENT')
      const k = cipher.createKey(Buffer.alloc(cipher.keyLengthBytes))
      await expectCode(() => cipher.seal(k, Buffer.alloc(cipher.nonceLengthBytes + 1), aad, Buffer.alloc(1)), 'ESCP_ERR_BAD_ARGUMENT')
    })
  })
}
