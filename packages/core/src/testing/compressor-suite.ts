// Compliance suite for the Compressor contract.
import crypto from 'node:crypto'
import { expect } from 'chai'
import type { Compressor } from '../contracts/compressor'
import { expectCode, logLikeText, skipIfUnavailable } from './helpers'

export interface CompressorSuiteOptions {
  /** False for a pass-through compressor ('none'): it never shrinks and never fails to decode. */
  compresses: boolean
}

export function compressorCompliance(
  label: string,
  make: () => Compressor | Promise<Compressor>,
  options: CompressorSuiteOptions,
): void {
  describe(`Compressor compliance: ${label}`, function () {
    let comp: Compressor

    before(async function () {
      comp = await make()
      skipIfUnavailable(this, `compressor '${comp.name}'`, comp.available())
    })

    const inputs: Array<[string, (n: number) => Buffer]> = [
      ['random', (n) => crypto.randomBytes(n)],
      ['zero', (n) => Buffer.alloc(n)],
      ['text', (n) => logLikeText(n)],
    ]

    function roundTrip(src: Uint8Array): Buffer {
      const packed = Buffer.alloc(src.byteLength)
      const n = comp.compress(src, packed)
      // null means "send raw": the receiver then gets the original bytes.
      if (n === null) return Buffer.from(src)
      expect(n).to.be.greaterThan(0).and.lessThan(src.byteLength)
      const out = Buffer.alloc(src.byteLength)
      const m = comp.decompress(packed.subarray(0, n), out)
      expect(m).to.equal(src.byteLength)
      return out.subarray(0, m)
    }

    for (const [kind, gen] of inputs) {
      for (const size of [1, 65536, 1 << 20]) {
        it(`round-trips ${size} bytes of ${kind} data`, function () {
          const src = gen(size)
          expect(roundTrip(src).equals(src)).to.equal(true)
        })
      }
    }

    it('round-trips an empty block', function () {
      expect(roundTrip(Buffer.alloc(0)).byteLength).to.equal(0)
    })

    it('reports incompressible data as not smaller', function () {
      expect(comp.compress(crypto.randomBytes(65536), Buffer.alloc(65536))).to.equal(null)
    })

    if (options.compresses) {
      it('shrinks zeros and text', function () {
        for (const src of [Buffer.alloc(1 << 20), logLikeText(1 << 20)]) {
          const n = comp.compress(src, Buffer.alloc(src.byteLength))
          expect(n).to.be.a('number').and.lessThan(src.byteLength / 2)
        }
      })

      it('reports "not smaller" when the destination is too short', function () {
        const src = logLikeText(65536)
        expect(comp.compress(src, Buffer.alloc(8))).to.equal(null)
      })

      it('treats garbage and truncated input as a corrupt block, not a crash', async function () {
        const out = Buffer.alloc(1 << 16)
        await expectCode(() => comp.decompress(crypto.randomBytes(1000), out), 'ESCP_ERR_CORRUPT_BLOCK')
        const src = logLikeText(1 << 16)
        const packed = Buffer.alloc(src.byteLength)
        const n = comp.compress(src, packed) as number
        await expectCode(() => comp.decompress(packed.subarray(0, Math.floor(n / 2)), out), 'ESCP_ERR_CORRUPT_BLOCK')
        // A mutated frame may still decode (the AEAD tag, not the compressor, guards content),
        // but it must either fail with the right code or stay within the output buffer.
        for (let i = 0; i < 200; i++) {
          const bad = Buffer.from(packed.subarray(0, n))
          bad[crypto.randomInt(n)] ^= 1 << crypto.randomInt(8)
          try {
            expect(comp.decompress(bad, out)).to.be.at.most(out.byteLength)
          } catch (err) {
            expect((err as { code?: string }).code).to.equal('ESCP_ERR_CORRUPT_BLOCK')
          }
        }
      })

      it('refuses output larger than the destination', async function () {
        const src = Buffer.alloc(1 << 16)
        const packed = Buffer.alloc(src.byteLength)
        const n = comp.compress(src, packed) as number
        await expectCode(() => comp.decompress(packed.subarray(0, n), Buffer.alloc(1000)), 'ESCP_ERR_CORRUPT_BLOCK')
      })
    }
  })
}
