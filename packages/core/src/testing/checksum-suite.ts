// Compliance suite for the Checksum contract.
import crypto from 'node:crypto'
import { expect } from 'chai'
import type { Checksum } from '../contracts/checksum'
import { combineDigests } from '../contracts/checksum'
import { skipIfUnavailable } from './helpers'

export interface ChecksumVector {
  /** Input as UTF-8 text. */
  input: string
  /** Expected block digest, hex. */
  blockHex: string
}

export function checksumCompliance(
  label: string,
  make: () => Checksum | Promise<Checksum>,
  vectors: readonly ChecksumVector[],
): void {
  describe(`Checksum compliance: ${label}`, function () {
    let sum: Checksum
    const hex = (d: Uint8Array) => Buffer.from(d).toString('hex')

    before(async function () {
      sum = await make()
      skipIfUnavailable(this, `checksum '${sum.name}'`, sum.available())
    })

    it('matches its known-answer vectors', function () {
      expect(vectors.length, 'a checksum plugin must supply known-answer vectors').to.be.greaterThan(0)
      for (const v of vectors) expect(hex(sum.block(Buffer.from(v.input, 'utf8'))), JSON.stringify(v.input)).to.equal(v.blockHex)
    })

    it('digests an empty block to digestLengthBytes bytes', function () {
      expect(sum.block(new Uint8Array(0)).byteLength).to.equal(sum.digestLengthBytes)
      expect(sum.combiner().digest().byteLength).to.equal(sum.digestLengthBytes)
    })

    it('is deterministic and tells different blocks apart', function () {
      const a = crypto.randomBytes(65536)
      const b = Buffer.from(a)
      b[12345] ^= 1
      expect(hex(sum.block(a))).to.equal(hex(sum.block(Buffer.from(a))))
      expect(hex(sum.block(a))).to.not.equal(hex(sum.block(b)))
    })

    it('combines block digests in block order', function () {
      const blocks = [0, 1, 2, 3].map(() => sum.block(crypto.randomBytes(4096)))
      const inOrder = hex(combineDigests(sum, blocks))
      expect(hex(combineDigests(sum, blocks))).to.equal(inOrder)
      expect(hex(combineDigests(sum, [blocks[1], blocks[0], blocks[2], blocks[3]]))).to.not.equal(inOrder)
      expect(hex(combineDigests(sum, blocks.slice(0, 3)))).to.not.equal(inOrder)
      expect(hex(combineDigests(sum, [...blocks, blocks[3]]))).to.not.equal(inOrder)
      expect(hex(combineDigests(sum, blocks))).to.have.length(sum.digestLengthBytes * 2)
    })

    it('keeps interleaved combiners independent', function () {
      const blocks = [0, 1, 2].map(() => sum.block(crypto.randomBytes(1000)))
      const expected = hex(combineDigests(sum, blocks))
      const x = sum.combiner()
      const y = sum.combiner()
      for (const d of blocks) {
        x.push(d)
        y.push(d)
        sum.block(crypto.randomBytes(100)) // block digests in between must not disturb combiners
      }
      expect(hex(x.digest())).to.equal(expected)
      expect(hex(y.digest())).to.equal(expected)
    })
  })
}
