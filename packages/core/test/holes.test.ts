// Which blocks of a sparse file a sender sends, and the receiver's check of FileDone.blocks
// against sparse_bytes: each against a plain block-by-block model, on random files.
import { expect } from 'chai'
import fc from 'fast-check'
import { blocksFitHoles, dataBlocks } from '../src/transfer/holes'

const BLOCK = 64 * 1024

/** The model: block by block, whether any extent touches it. */
function touchedBlocks(extents: Array<{ offset: number; length: number }>, sizeBytes: number): boolean[] {
  const n = Math.ceil(sizeBytes / BLOCK)
  return Array.from({ length: n }, (_, b) => extents.some((x) => x.length > 0 && x.offset < Math.min((b + 1) * BLOCK, sizeBytes) && x.offset + x.length > b * BLOCK))
}

const file = fc
  .integer({ min: 1, max: 20 * BLOCK })
  .chain((sizeBytes) =>
    fc.record({
      sizeBytes: fc.constant(sizeBytes),
      // Unordered, overlapping, empty and past-the-end extents, as a careless engine might give.
      extents: fc.array(fc.record({ offset: fc.integer({ min: 0, max: sizeBytes + BLOCK }), length: fc.integer({ min: 0, max: 3 * BLOCK }) }), { maxLength: 8 }),
    }),
  )

describe('sparse files: blocks to send', function () {
  it('sends exactly the blocks an extent touches, as ordered runs, and counts the rest as hole bytes', function () {
    fc.assert(
      fc.property(file, ({ sizeBytes, extents }) => {
        const { runs, holeBytes } = dataBlocks(extents, sizeBytes, BLOCK)
        const sent = touchedBlocks(extents, sizeBytes).map(() => false)
        for (const [i, r] of runs.entries()) {
          expect(r.start).to.be.lessThan(r.end)
          if (i > 0) expect(r.start, 'runs neither overlap nor touch').to.be.greaterThan(runs[i - 1].end)
          for (let b = r.start; b < r.end; b++) sent[b] = true
        }
        expect(sent).to.deep.equal(touchedBlocks(extents, sizeBytes))
        const skipped = sent.reduce((n, s, b) => (s ? n : n + Math.min(BLOCK, sizeBytes - b * BLOCK)), 0)
        expect(holeBytes).to.equal(skipped)
      }),
    )
  })

  it('takes the count of blocks sent, and only that count, as fitting the hole bytes announced', function () {
    fc.assert(
      fc.property(file, ({ sizeBytes, extents }) => {
        const { runs, holeBytes } = dataBlocks(extents, sizeBytes, BLOCK)
        const blocks = runs.reduce((n, r) => n + r.end - r.start, 0)
        const size = BigInt(sizeBytes)
        expect(blocksFitHoles(size, BigInt(holeBytes), BigInt(blocks), BLOCK)).to.equal(true)
        for (const other of [blocks - 1, blocks + 1]) {
          if (other >= 0) expect(blocksFitHoles(size, BigInt(holeBytes), BigInt(other), BLOCK), `${other} blocks`).to.equal(false)
        }
      }),
    )
  })

  it('wants every block when no hole is announced, and refuses more blocks than the file has', function () {
    const size = BigInt(3 * BLOCK + 100)
    expect(blocksFitHoles(size, 0n, 4n, BLOCK)).to.equal(true)
    expect(blocksFitHoles(size, 0n, 3n, BLOCK)).to.equal(false)
    expect(blocksFitHoles(size, 0n, 5n, BLOCK)).to.equal(false)
    expect(blocksFitHoles(size, BigInt(BLOCK), 5n, BLOCK)).to.equal(false)
    // Holes announced while every block comes.
    expect(blocksFitHoles(size, BigInt(BLOCK), 4n, BLOCK)).to.equal(false)
    // The last block left out (100 bytes), or a full one.
    expect(blocksFitHoles(size, 100n, 3n, BLOCK)).to.equal(true)
    expect(blocksFitHoles(size, BigInt(BLOCK + 100), 2n, BLOCK)).to.equal(true)
    expect(blocksFitHoles(size, BigInt(2 * BLOCK), 2n, BLOCK)).to.equal(true)
    // All hole: no block at all, sparse_bytes the whole size.
    expect(blocksFitHoles(size, size, 0n, BLOCK)).to.equal(true)
    expect(blocksFitHoles(size, size - 1n, 0n, BLOCK)).to.equal(false)
  })
})
