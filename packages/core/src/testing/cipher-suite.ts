// Compliance suite for the Cipher contract; every cipher plugin runs it in its own tests.
import crypto from 'node:crypto'
import { expect } from 'chai'
import type { Cipher } from '../contracts/cipher'
import { expectCode, skipBecause, skipIfUnavailable } from './helpers'

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

    describe('sealInto and openInto (optional)', function () {
      before(function () {
        if (!cipher.sealInto || !cipher.openInto) skipBecause(this, `cipher '${cipher.name}' has no sealInto/openInto`)
      })

      for (const size of [0, 1, 4097, 1 << 20]) {
        it(`seals and opens ${size} bytes in place, as seal() and open() do`, function () {
          const { key, nonce } = fresh()
          const k = cipher.createKey(key)
          const plain = crypto.randomBytes(size)
          const reference = cipher.seal(k, nonce, aad, plain)
          const buf = Buffer.from(plain)
          const tag = Buffer.alloc(cipher.tagLengthBytes)
          cipher.sealInto!(k, nonce, aad, buf, buf, tag)
          expect(buf.equals(reference.ciphertext)).to.equal(true)
          expect(tag.equals(reference.tag)).to.equal(true)
          cipher.openInto!(k, nonce, aad, buf, tag, buf)
          expect(buf.equals(plain)).to.equal(true)
        })
      }

      it('writes into a separate, longer buffer and leaves the rest of it alone', function () {
        const { key, nonce } = fresh()
        const k = cipher.createKey(key)
        const plain = crypto.randomBytes(1000)
        const out = Buffer.alloc(1100, 0xee)
        const tag = Buffer.alloc(cipher.tagLengthBytes)
        cipher.sealInto!(k, nonce, aad, plain, out, tag)
        expect(out.subarray(1000).every((b) => b === 0xee)).to.equal(true)
        const back = Buffer.alloc(1000)
        cipher.openInto!(k, nonce, aad, out.subarray(0, 1000), tag, back)
        expect(back.equals(plain)).to.equal(true)
      })

      it('refuses a flipped byte, and an output that is short or partly overlaps the input', async function () {
        const { key, nonce } = fresh()
        const k = cipher.createKey(key)
        const buf = crypto.randomBytes(4096)
        const tag = Buffer.alloc(cipher.tagLengthBytes)
        cipher.sealInto!(k, nonce, aad, buf, buf, tag)
        const bad = Buffer.from(buf)
        bad[4000] ^= 0x04
        await expectCode(() => cipher.openInto!(k, nonce, aad, bad, tag, bad), 'ESCP_ERR_AUTH')
        await expectCode(() => cipher.sealInto!(k, nonce, aad, buf, Buffer.alloc(4095), tag), 'ESCP_ERR_BAD_ARGUMENT')
        await expectCode(() => cipher.sealInto!(k, nonce, aad, buf.subarray(0, 4000), buf.subarray(16), tag), 'ESCP_ERR_BAD_ARGUMENT')
      })
    })

    it('refuses keys and nonces of the wrong length', async function () {
      await expectCode(() => cipher.createKey(Buffer.alloc(cipher.keyLengthBytes - 1)), 'ESCP_ERR_BAD_ARGUMENT')
      const k = cipher.createKey(Buffer.alloc(cipher.keyLengthBytes))
      await expectCode(() => cipher.seal(k, Buffer.alloc(cipher.nonceLengthBytes + 1), aad, Buffer.alloc(1)), 'ESCP_ERR_BAD_ARGUMENT')
    })
  })
}
