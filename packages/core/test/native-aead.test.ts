// The two implementations of each built-in cipher, native (in place, core's native module) and
// node:crypto, are one algorithm on the wire: each opens what the other seals.
import crypto from 'node:crypto'
import { expect } from 'chai'
import { NodeAeadCipher, OpenSslAeadCipher, builtinCiphers, loadAeadBinding } from '@escp/core/builtin'
import { cipherCompliance, skipBecause } from '@escp/core/testing'


const ALGORITHMS: Array<[name: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305', keyBytes: number]> = [
  ['aes-128-gcm', 16],
  ['aes-256-gcm', 32],
  ['chacha20-poly1305', 32],
]

for (const [name, keyBytes] of ALGORITHMS) cipherCompliance(`${name} (node:crypto)`, () => new NodeAeadCipher(name, keyBytes))

describe('Native AEAD', function () {
  before(function () {
    const load = loadAeadBinding()
    // CI builds every native module and says so; elsewhere a missing build only skips.
    if (!load.ok && process.env.ESCP_REQUIRE_NATIVE !== '1') skipBecause(this, `the core's native module is not here: ${load.reason}`)
  })

  it('is what the built-in ciphers use, with the OpenSSL of this Node.js', function () {
    const load = loadAeadBinding()
    expect(load.ok, load.ok ? '' : load.reason).to.equal(true)
    if (load.ok) expect(load.binding.openssl).to.include(process.versions.openssl)
    for (const c of builtinCiphers()) expect(c).to.be.instanceOf(OpenSslAeadCipher)
  })

  for (const [name, keyBytes] of ALGORITHMS) {
    it(`${name}: each implementation opens what the other seals, at 0 B to 1 MiB`, function () {
      const native = builtinCiphers().find((c) => c.name === name) as OpenSslAeadCipher
      const node = new NodeAeadCipher(name, keyBytes)
      for (const size of [0, 15, 16, 65536 + 3, 1 << 20]) {
        const raw = crypto.randomBytes(keyBytes)
        const nonce = crypto.randomBytes(12)
        const aad = crypto.randomBytes(32)
        const plain = crypto.randomBytes(size)
        const a = native.seal(native.createKey(raw), nonce, aad, plain)
        const b = node.seal(node.createKey(raw), nonce, aad, plain)
        expect(Buffer.from(a.ciphertext).equals(b.ciphertext)).to.equal(true)
        expect(Buffer.from(a.tag).equals(b.tag)).to.equal(true)
        expect(Buffer.from(node.open(node.createKey(raw), nonce, aad, a.ciphertext, a.tag)).equals(plain)).to.equal(true)
        const buf = Buffer.from(b.ciphertext)
        native.openInto(native.createKey(raw), nonce, aad, buf, b.tag, buf)
        expect(buf.equals(plain)).to.equal(true)
      }
    })
  }

  it('keeps one key for many records, each with its own nonce', function () {
    const native = builtinCiphers()[0] as OpenSslAeadCipher
    const node = new NodeAeadCipher('aes-128-gcm', 16)
    const raw = crypto.randomBytes(16)
    const k = native.createKey(raw)
    const nk = node.createKey(raw)
    for (let i = 0; i < 50; i++) {
      const nonce = crypto.randomBytes(12)
      const plain = crypto.randomBytes(1 + i * 97)
      const tag = Buffer.alloc(16)
      const buf = Buffer.from(plain)
      // Alternate directions on the one key, as a stream's two directions never do, to be sure.
      native.sealInto(k, nonce, Buffer.alloc(0), buf, buf, tag)
      expect(Buffer.from(node.open(nk, nonce, Buffer.alloc(0), buf, tag)).equals(plain)).to.equal(true)
      native.openInto(k, nonce, Buffer.alloc(0), buf, tag, buf)
      expect(buf.equals(plain)).to.equal(true)
    }
  })
})
