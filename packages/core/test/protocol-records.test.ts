// The record layer against a hostile network: every alteration, replay, reordering, drop or
// cross-stream splice fails authentication, and no input makes the decoder crash, hang or
// allocate what a header merely claims.
import crypto from 'node:crypto'
import { expect } from 'chai'
import fc from 'fast-check'
import * as flatbuffers from 'flatbuffers'
import { loadPlugins, protocol } from '@escp/core'
import type { Cipher } from '@escp/core'
import { expectCode } from '@escp/core/testing'
import * as fb from '../src/protocol/generated/escp_generated'

const { RecordType, RecordDecoder, RecordOpener, RecordSealer, decodeHeader, encodeHeader } = protocol
type SealedFrame = protocol.SealedFrame

const BLOCK = 1 << 20

describe('wire records', function () {
  let cipher: Cipher
  let keys: protocol.SessionKeys

  before(async function () {
    cipher = (await loadPlugins()).registry.resolve('cipher', 'aes-128-gcm')
  })
  beforeEach(function () {
    keys = { secret: protocol.newSessionSecret(), sessionId: protocol.newSessionId(), cipher }
  })

  const block = (fileId: bigint, offset: bigint, payload: Uint8Array) =>
    ({ type: RecordType.Block, flags: 0, rawLength: payload.byteLength, fileId, offset })

  function sealMany(sealer: protocol.RecordSealer, n: number): SealedFrame[] {
    const out: SealedFrame[] = []
    for (let i = 0; i < n; i++) {
      const p = crypto.randomBytes(100 + i)
      out.push(...sealer.seal(block(7n, BigInt(i * 4096), p), p))
    }
    return out
  }

  function openFrame(opener: protocol.RecordOpener, [h, ct, tag]: SealedFrame): Uint8Array | null {
    return opener.open(decodeHeader(h, BLOCK), h, ct, tag)
  }

  it('round-trips a header', function () {
    const h = { type: RecordType.Block, flags: protocol.FLAG_COMPRESSED, length: 1000, rawLength: 4096, fileId: 2n ** 60n, offset: 2n ** 40n + 5n }
    expect(decodeHeader(encodeHeader(h), BLOCK)).to.deep.equal(h)
  })

  it('rejects a length field of 2^31 before allocating anything', async function () {
    const h = encodeHeader({ type: RecordType.Block, flags: 0, length: 2 ** 31, rawLength: 2 ** 31, fileId: 0n, offset: 0n })
    const decoder = new RecordDecoder(BLOCK)
    const before = process.memoryUsage().arrayBuffers
    await expectCode(() => decoder.push(h), 'ESCP_ERR_PROTOCOL')
    expect(process.memoryUsage().arrayBuffers - before).to.be.lessThan(1 << 20)
    expect(decoder.pendingBytes).to.equal(0)
  })

  it('rejects unknown types, unknown flags and reserved bits', async function () {
    const good = encodeHeader({ type: RecordType.Keepalive, flags: 0, length: 0, rawLength: 0, fileId: 0n, offset: 0n })
    for (const [at, value] of [[0, 200], [1, 0x80], [2, 1], [13, 1]] as const) {
      const bad = Buffer.from(good)
      bad[at] = value
      await expectCode(() => decodeHeader(bad, BLOCK), 'ESCP_ERR_PROTOCOL')
    }
  })

  it('opens records in order, across a key change', function () {
    const sealer = new RecordSealer(keys, 1, 'c2s')
    const opener = new RecordOpener(keys, 1, 'c2s')
    const frames = sealMany(sealer, 3)
    sealer.forceRekey()
    frames.push(...sealMany(sealer, 2))
    expect(frames).to.have.length(6) // 5 blocks and one REKEY
    const opened = frames.map((f) => openFrame(opener, f))
    expect(opened.filter((p) => p === null)).to.have.length(1)
    expect(opener.epoch).to.equal(1)
  })

  it('seals into a frame, in place or from apart, across a key change, as seal() does', async function () {
    const sealer = new RecordSealer(keys, 2, 's2c')
    const twin = new RecordSealer(keys, 2, 's2c')
    expect(sealer.sealsInto, 'the built-in cipher seals into a buffer').to.equal(true)
    const decoder = new RecordDecoder(BLOCK)
    const opener = new RecordOpener(keys, 2, 's2c')
    const plains: Buffer[] = []
    for (let i = 0; i < 6; i++) {
      if (i === 3) {
        sealer.forceRekey()
        twin.forceRekey()
      }
      const p = crypto.randomBytes(5000 + i)
      plains.push(p)
      const frame = new Uint8Array(p.byteLength + protocol.RECORD_FRAME_OVERHEAD + 7)
      // Odd records are sealed where the payload lies in the frame, even ones from apart.
      if (i % 2 === 1) frame.set(p, protocol.RECORD_HEADER_BYTES)
      const payload = i % 2 === 1 ? frame.subarray(protocol.RECORD_HEADER_BYTES, protocol.RECORD_HEADER_BYTES + p.byteLength) : p
      const wire = sealer.sealInto(block(3n, BigInt(i), p), payload, frame)
      expect(Buffer.concat(wire).equals(Buffer.concat(twin.seal(block(3n, BigInt(i), p), p).flat()))).to.equal(true)
      for (const f of decoder.push(Buffer.concat(wire))) {
        const plain = opener.openInPlace(f.header, f.headerBytes, f.ciphertext, f.tag)
        if (plain !== null) expect(Buffer.from(plain).equals(plains[Number(f.header.offset)])).to.equal(true)
      }
    }
    expect(opener.epoch).to.equal(1)
    await expectCode(() => sealer.sealInto(block(3n, 0n, Buffer.alloc(10)), Buffer.alloc(10), new Uint8Array(10 + protocol.RECORD_FRAME_OVERHEAD - 1)), 'ESCP_ERR_BAD_ARGUMENT')
  })

  it('fails a flipped bit anywhere in a record: header, ciphertext or tag', async function () {
    const [frame] = sealMany(new RecordSealer(keys, 1, 'c2s'), 1)
    const flat = Buffer.concat(frame)
    for (let i = 0; i < flat.byteLength; i++) {
      const bad = Buffer.from(flat)
      bad[i] ^= 1 << (i % 8)
      const opener = new RecordOpener(keys, 1, 'c2s')
      let frames: protocol.RecordFrame[] = []
      try {
        frames = new RecordDecoder(BLOCK).push(bad)
      } catch (err) {
        expect((err as { code: string }).code).to.equal('ESCP_ERR_PROTOCOL')
        continue
      }
      // A changed length leaves the record incomplete or short: it never opens as valid.
      for (const f of frames) await expectCode(() => opener.open(f.header, f.headerBytes, f.ciphertext, f.tag), 'ESCP_ERR_AUTH')
    }
  })

  it('fails a replayed record', async function () {
    const frames = sealMany(new RecordSealer(keys, 1, 'c2s'), 2)
    const opener = new RecordOpener(keys, 1, 'c2s')
    openFrame(opener, frames[0])
    await expectCode(() => openFrame(opener, frames[0]), 'ESCP_ERR_AUTH')
  })

  it('fails reordered and dropped records', async function () {
    const frames = sealMany(new RecordSealer(keys, 1, 'c2s'), 3)
    await expectCode(() => openFrame(new RecordOpener(keys, 1, 'c2s'), frames[1]), 'ESCP_ERR_AUTH')
    const opener = new RecordOpener(keys, 1, 'c2s')
    openFrame(opener, frames[0])
    await expectCode(() => openFrame(opener, frames[2]), 'ESCP_ERR_AUTH')
  })

  it('fails a record moved to another stream or direction, or sealed under another secret', async function () {
    const [frame] = sealMany(new RecordSealer(keys, 1, 'c2s'), 1)
    await expectCode(() => openFrame(new RecordOpener(keys, 2, 'c2s'), frame), 'ESCP_ERR_AUTH')
    await expectCode(() => openFrame(new RecordOpener(keys, 1, 's2c'), frame), 'ESCP_ERR_AUTH')
    const other = { ...keys, secret: protocol.newSessionSecret() }
    await expectCode(() => openFrame(new RecordOpener(other, 1, 'c2s'), frame), 'ESCP_ERR_AUTH')
  })

  it('fails when a key change is dropped', async function () {
    const sealer = new RecordSealer(keys, 1, 'c2s')
    const frames = sealMany(sealer, 1)
    sealer.forceRekey()
    const after = sealMany(sealer, 1) // [REKEY, block]
    const opener = new RecordOpener(keys, 1, 'c2s')
    openFrame(opener, frames[0])
    await expectCode(() => openFrame(opener, after[1]), 'ESCP_ERR_AUTH')
  })

  it('reassembles records from reads split at every byte', function () {
    const sealer = new RecordSealer(keys, 3, 's2c')
    const frames = sealMany(sealer, 3)
    const wire = Buffer.concat(frames.flat())
    const decoder = new RecordDecoder(BLOCK)
    const opener = new RecordOpener(keys, 3, 's2c')
    let got = 0
    for (let i = 0; i < wire.byteLength; i++) {
      for (const f of decoder.push(wire.subarray(i, i + 1))) {
        expect(opener.open(f.header, f.headerBytes, f.ciphertext, f.tag)).to.not.equal(null)
        got++
      }
    }
    expect(got).to.equal(3)
  })

  it('never crashes or hangs on random input (property)', function () {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (chunks) => {
        const decoder = new RecordDecoder(BLOCK)
        const opener = new RecordOpener(keys, 1, 'c2s')
        try {
          for (const c of chunks) {
            for (const f of decoder.push(Buffer.from(c))) opener.open(f.header, f.headerBytes, f.ciphertext, f.tag)
          }
        } catch (err) {
          expect((err as { code?: string }).code).to.be.oneOf(['ESCP_ERR_PROTOCOL', 'ESCP_ERR_AUTH'])
        }
      }),
      { numRuns: 3000 },
    )
  })

  it('accepts only the original records from mutated, truncated and re-chunked streams (property)', function () {
    const sealer = new RecordSealer(keys, 1, 'c2s')
    const frames = sealMany(sealer, 4)
    const wire = Buffer.concat(frames.flat())
    const originals = frames.map(([h, ct]) => Buffer.concat([h, Buffer.from(ct)]).toString('hex'))
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(wire.byteLength - 1), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 3 }),
        fc.nat(wire.byteLength),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 10 }),
        (flips, cut, sizes) => {
          const bad = Buffer.from(wire.subarray(0, cut))
          for (const f of flips) if (f.at < bad.byteLength) bad[f.at] ^= f.xor
          const decoder = new RecordDecoder(BLOCK)
          const opener = new RecordOpener(keys, 1, 'c2s')
          let pos = 0
          let i = 0
          try {
            while (pos < bad.byteLength) {
              const n = sizes[i++ % sizes.length]
              for (const f of decoder.push(bad.subarray(pos, pos + n))) {
                const plain = opener.open(f.header, f.headerBytes, f.ciphertext, f.tag)
                expect(plain).to.not.equal(null)
                const k = originals.indexOf(Buffer.concat([f.headerBytes, f.ciphertext]).toString('hex'))
                expect(k, 'a record that was not sent was accepted').to.be.at.least(0)
              }
              pos += n
            }
          } catch (err) {
            expect((err as { code?: string }).code).to.be.oneOf(['ESCP_ERR_PROTOCOL', 'ESCP_ERR_AUTH'])
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})

describe('wire messages', function () {
  const caps = { ciphers: ['aes-128-gcm'], compressors: ['none', 'zstd'], checksums: ['xxh64'], engines: ['node-fs'] }
  const init: protocol.SessionInit = {
    protocolMajor: 1, protocolMinor: 0, software: 'escp 0.1.0',
    sessionId: new Uint8Array(crypto.randomBytes(16)), secret: new Uint8Array(crypto.randomBytes(32)),
    serverRole: 'receiver', ciphers: ['aes-128-gcm', 'chacha20-poly1305'], compressor: 'zstd', compressionLevel: 3,
    checksum: 'xxh64', serverEngine: 'node-fs', blockSizeBytes: 1 << 20, streams: 4, bindAddress: '127.0.0.1',
    port: 1232, portRange: 10, preserve: true, sparse: false, direct: true, recursive: true,
    paths: ['/tmp/dest dir/é'], capabilities: caps, sourceCount: 2, queueDepth: 4, rateLimit: 0,
  }

  it('round-trips every control message', function () {
    const messages: protocol.ControlMessage[] = [
      { kind: 'init', init },
      { kind: 'accept', accept: { protocolMajor: 1, protocolMinor: 0, software: 'escp 0.1.0', address: '127.0.0.1', port: 1233, cipher: 'aes-128-gcm', capabilities: caps } },
      { kind: 'fatal', fatal: { code: 'ESCP_ERR_VERSION_MISMATCH', message: 'no' } },
      { kind: 'done', done: { ok: true, filesOk: 10n, filesFailed: 0n, bytes: 2n ** 40n } },
    ]
    for (const m of messages) expect(protocol.decodeControl(protocol.encodeControl(m))).to.deep.equal(m)
  })

  it('round-trips every meta message', function () {
    const file: protocol.FileSpec = {
      id: 3n, path: new Uint8Array(Buffer.from('dir/with\nnewline/\xff', 'latin1')), type: 'file', size: 2n ** 45n, sizeAtEnd: false,
      mode: 0o100644, uid: 1000, gid: 100, atimeNs: 1_700_000_000_123_456_789n, mtimeNs: -5n, linkTarget: new Uint8Array(0), sparseBytes: 0n,
    }
    const link: protocol.FileSpec = { ...file, id: 4n, type: 'symlink', linkTarget: new Uint8Array(Buffer.from('../x')) }
    const batch = { files: [file, link, { ...file, id: 5n, type: 'directory' as const }], last: true }
    expect(protocol.decodeFileBatch(protocol.encodeFileBatch(batch))).to.deep.equal(batch)
    const done = [{ id: 3n, size: 10n, blocks: 1n, digest: new Uint8Array([1, 2, 3]) }]
    expect(protocol.decodeFileDone(protocol.encodeFileDone(done))).to.deep.equal(done)
    const verdicts: protocol.Verdict[] = [
      { id: 3n, ok: true, digest: new Uint8Array([1, 2, 3]) },
      { id: 4n, ok: false, digest: new Uint8Array(0), error: { code: 'ESCP_ERR_IO', errnoName: 'ENOSPC', syscall: 'write', message: 'no space' } },
    ]
    expect(protocol.decodeVerdicts(protocol.encodeVerdicts(verdicts))).to.deep.equal(verdicts)
    const okRuns = [{ first: 7n, count: 3n }, { first: 2n ** 40n, count: 1n }]
    expect(protocol.decodeVerdictBatch(protocol.encodeVerdicts(verdicts, okRuns))).to.deep.equal({ verdicts, okRuns })
    const none = new Uint8Array(0)
    expect(protocol.decodeVerdicts(protocol.encodeVerdicts([], [{ first: 7n, count: 2n }]))).to.deep.equal([{ id: 7n, ok: true, digest: none }, { id: 8n, ok: true, digest: none }])
    // Ids gathered mostly in order make few runs.
    expect(protocol.okRunsOf([5n, 6n, 7n, 3n, 4n, 9n])).to.deep.equal([{ first: 5n, count: 3n }, { first: 3n, count: 2n }, { first: 9n, count: 1n }])
    const report: protocol.ErrorReport = { fileId: 9n, path: new Uint8Array(Buffer.from('a/b')), fatal: false, error: { code: 'ESCP_ERR_IO', errnoName: 'EACCES', syscall: 'open', message: 'denied' } }
    expect(protocol.decodeErrorReport(protocol.encodeErrorReport(report))).to.deep.equal(report)
    const noFile: protocol.ErrorReport = { path: new Uint8Array(0), fatal: true, error: report.error }
    expect(protocol.decodeErrorReport(protocol.encodeErrorReport(noFile))).to.deep.equal(noFile)
    const digests = { fileId: 1n, blockSizeBytes: 1 << 20, firstBlock: 7n, digests: new Uint8Array(crypto.randomBytes(64)) }
    expect(protocol.decodeBlockDigests(protocol.encodeBlockDigests(digests))).to.deep.equal(digests)
    expect(protocol.decodeSessionEnd(protocol.encodeSessionEnd({ files: 3n, bytes: 99n }))).to.deep.equal({ files: 3n, bytes: 99n })
  })

  it('refuses ok runs that are not pairs, or that answer no entry, and lists at most 2^20 entries of runs one by one', async function () {
    const batch = (values: bigint[]) => {
      const b = new flatbuffers.Builder(64)
      const runs = fb.VerdictBatch.createOkRunsVector(b, values)
      b.finish(fb.VerdictBatch.createVerdictBatch(b, fb.VerdictBatch.createVerdictsVector(b, []), runs))
      return b.asUint8Array()
    }
    await expectCode(() => protocol.decodeVerdictBatch(batch([1n, 2n, 3n])), 'ESCP_ERR_PROTOCOL')
    await expectCode(() => protocol.decodeVerdictBatch(batch([1n, 0n])), 'ESCP_ERR_PROTOCOL')
    await expectCode(() => protocol.decodeVerdicts(batch([0n, 2n ** 40n])), 'ESCP_ERR_PROTOCOL')
  })

  it("writes byte vectors exactly as flatc's generated encoder does, byte for byte", function () {
    const path = new Uint8Array(Buffer.from('a dir/a file, ünïcode\n', 'utf8'))
    const target = new Uint8Array(Buffer.from('../elsewhere'))
    const spec: protocol.FileSpec = { id: 7n, path, type: 'symlink', size: 12n, sizeAtEnd: false, mode: 0o120777, uid: 1, gid: 2, atimeNs: 3n, mtimeNs: 4n, linkTarget: target, sparseBytes: 0n }
    const b = new flatbuffers.Builder(1024)
    const p = fb.FileSpec.createPathVector(b, path)
    const l = fb.FileSpec.createLinkTargetVector(b, target)
    const one = fb.FileSpec.createFileSpec(b, 7n, p, fb.FileType.Symlink, 12n, false, 0o120777, 1, 2, 3n, 4n, l, 0n)
    b.finish(fb.FileBatch.createFileBatch(b, fb.FileBatch.createFilesVector(b, [one]), true))
    expect(Buffer.from(protocol.encodeFileBatch({ files: [spec], last: true }))).to.deep.equal(Buffer.from(b.asUint8Array()))

    const digest = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2])
    const d = new flatbuffers.Builder(256)
    const done = fb.FileDone.createFileDone(d, 7n, 12n, 1n, fb.FileDone.createDigestVector(d, digest))
    d.finish(fb.FileDoneBatch.createFileDoneBatch(d, fb.FileDoneBatch.createFilesVector(d, [done])))
    expect(Buffer.from(protocol.encodeFileDone([{ id: 7n, size: 12n, blocks: 1n, digest }]))).to.deep.equal(Buffer.from(d.asUint8Array()))
  })

  it('never crashes or hangs on random or mutated message bytes (property)', function () {
    const samples = [protocol.encodeControl({ kind: 'init', init }), protocol.encodeFileBatch({ files: [], last: false })]
    const decoders = [protocol.decodeControl, protocol.decodeFileBatch, protocol.decodeFileDone, protocol.decodeVerdicts, protocol.decodeErrorReport, protocol.decodeBlockDigests]
    const check = (buf: Uint8Array) => {
      for (const decode of decoders) {
        try {
          decode(buf)
        } catch (err) {
          expect((err as { code?: string }).code, String(err)).to.equal('ESCP_ERR_PROTOCOL')
        }
      }
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (buf) => check(buf)), { numRuns: 2000 })
    fc.assert(
      fc.property(fc.nat(samples.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (which, edits) => {
        const buf = Buffer.from(samples[which])
        for (const [at, v] of edits) buf[at % buf.byteLength] = v
        check(buf)
      }),
      { numRuns: 3000 },
    )
  })
})
