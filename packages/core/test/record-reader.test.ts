// A data stream's records read off a real loopback socket, into buffers of the reader's own
// and from 'data' events: whatever the reads' sizes, every record comes whole and in order,
// bytes read before the reader took over come first, and a header no data stream may carry
// stops the stream.
import crypto from 'node:crypto'
import net from 'node:net'
import { once } from 'node:events'
import { expect } from 'chai'
import { protocol } from '@escp/core'
import type { EscpError } from '@escp/core'

const { RecordType, encodeHeader, readRecords, RECORD_HEADER_BYTES, TAG_BYTES } = protocol

const BLOCK = 64 * 1024
const FULL = RECORD_HEADER_BYTES + BLOCK + TAG_BYTES

/** A record as the reader sees it: header, payload, tag (nothing checks the tag here). */
function record(type: protocol.RecordType, length: number): Buffer {
  const header = encodeHeader({ type, flags: 0, length, rawLength: type === RecordType.Block ? length : 0, fileId: type === RecordType.Block ? 3n : 0n, offset: 0n })
  return Buffer.concat([header, crypto.randomBytes(length + TAG_BYTES)])
}

/** Sizes that cross every boundary: empty, small runs, one short of a block, whole blocks. */
function mixedRecords(): Buffer[] {
  const sizes = [0, 1, 100, BLOCK, BLOCK, 5000, BLOCK - 1, BLOCK, 17, 17, 17, BLOCK, 30000, 40000, BLOCK, BLOCK, 0]
  for (let i = 0; i < 40; i++) sizes.push(crypto.randomInt(0, BLOCK + 1))
  return [...sizes.map((n) => record(RecordType.Block, n)), record(RecordType.End, 0)]
}

interface Pair {
  client: net.Socket
  server: net.Socket
  close(): void
}

async function socketPair(): Promise<Pair> {
  const listener = net.createServer({ pauseOnConnect: true })
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const { port } = listener.address() as net.AddressInfo
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect')
  const [server] = await accepted
  return {
    client,
    server,
    close() {
      client.destroy()
      server.destroy()
      listener.close()
    },
  }
}

/** Writes `bytes` in pieces of random sizes, each in a turn of its own, so that reads split anywhere. */
async function writeInPieces(socket: net.Socket, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.byteLength; ) {
    const n = Math.min(bytes.byteLength - at, crypto.randomInt(1, 3 * BLOCK))
    if (!socket.write(bytes.subarray(at, at + n))) await once(socket, 'drain')
    at += n
    await new Promise((resolve) => setImmediate(resolve))
  }
}

for (const userBuffers of [true, false]) {
  describe(`data stream records read ${userBuffers ? 'into buffers of their own' : "from 'data' events"}`, function () {
    let pair: Pair
    beforeEach(async function () {
      pair = await socketPair()
    })
    afterEach(function () {
      pair.close()
    })

    /** Reads until END or an error; `pending`: bytes as if read off the socket before. */
    interface Watch {
      onFirst?: (reader: protocol.RecordReader) => void
      onBatch?: (records: number) => void
      blockSizeBytes?: number
    }

    function collect(pending = Buffer.alloc(0), { onFirst, onBatch, blockSizeBytes = BLOCK }: Watch = {}): Promise<{ frames: protocol.SealedRecord[]; error?: EscpError }> {
      return new Promise((resolve) => {
        const frames: protocol.SealedRecord[] = []
        // Records given with the reader come before readRecords() returns it.
        const started: { reader?: protocol.RecordReader } = {}
        let first = true
        started.reader = readRecords(pair.server, pending, {
          blockSizeBytes,
          allocate: (bytes) => Buffer.allocUnsafeSlow(bytes),
          userBuffers,
          onRecords: (got) => {
            onBatch?.(got.length)
            frames.push(...got)
            if (first && onFirst && started.reader) onFirst(started.reader)
            first = false
            if (got.some((f) => f.header.type === RecordType.End)) resolve({ frames })
          },
          onError: (error) => resolve({ frames, error }),
        })
        started.reader.resume()
      })
    }

    it('hands on every record whole and in order, however the reads split them', async function () {
      const sent = mixedRecords()
      const got = collect()
      await writeInPieces(pair.client, Buffer.concat(sent))
      const { frames, error } = await got
      expect(error).to.equal(undefined)
      expect(frames.map((f) => Buffer.compare(f.raw, sent[frames.indexOf(f)]))).to.deep.equal(sent.map(() => 0))
      // Each goes to a worker whole, at the start of a buffer of its own: one of its length, or,
      // for a record of at least 3/4 of a full one, the full-size buffer it was read into.
      for (const f of frames) {
        expect(f.raw.byteOffset).to.equal(0)
        const large = f.raw.byteLength >= FULL * 0.75
        expect(f.raw.buffer.byteLength, `a record of ${f.raw.byteLength} bytes`).to.be.oneOf(large ? [f.raw.byteLength, FULL] : [f.raw.byteLength])
      }
    })

    it('puts bytes read before it took over first: those it is given, then those the socket holds', async function () {
      const sent = mixedRecords()
      const all = Buffer.concat(sent)
      // A record and a half as if read by the stream's hello phase, then some in the socket's buffer.
      const given = all.subarray(0, sent[0].byteLength + sent[1].byteLength + 50)
      pair.client.write(all.subarray(given.byteLength, given.byteLength + 200_000))
      pair.server.read(0)
      while (pair.server.readableLength === 0) await new Promise((resolve) => setTimeout(resolve, 5))
      const got = collect(Buffer.from(given))
      await writeInPieces(pair.client, all.subarray(given.byteLength + 200_000))
      const { frames, error } = await got
      expect(error).to.equal(undefined)
      expect(Buffer.concat(frames.map((f) => f.raw)).equals(all)).to.equal(true)
    })

    it('reads nothing more while paused, and the rest once resumed', async function () {
      const sent = [...Array.from({ length: 20 }, () => record(RecordType.Block, BLOCK)), record(RecordType.End, 0)]
      let paused: protocol.RecordReader | undefined
      const got = collect(Buffer.alloc(0), {
        onFirst: (reader) => {
          reader.pause()
          paused = reader
        },
      })
      pair.client.write(Buffer.concat(sent))
      while (!paused) await new Promise((resolve) => setTimeout(resolve, 5))
      await new Promise((resolve) => setTimeout(resolve, 100))
      // The kernel holds the rest: the reader took at most what one burst of reads brought.
      expect(pair.server.bytesRead).to.be.lessThan(sent.length * FULL)
      paused.resume()
      const { frames, error } = await got
      expect(error).to.equal(undefined)
      expect(frames).to.have.length(sent.length)
    })

    it('hands on a flood of tiny records a read at a time, never more than 256 KiB of them at once', async function () {
      const sent = [...Array.from({ length: 50_000 }, () => record(RecordType.Keepalive, 0)), record(RecordType.End, 0)]
      let largest = 0
      // Blocks of 4 MiB: a read into a whole record's buffer would bring 87,000 such records.
      const got = collect(Buffer.alloc(0), { onBatch: (n) => (largest = Math.max(largest, n)), blockSizeBytes: 4 << 20 })
      pair.client.write(Buffer.concat(sent))
      const { frames, error } = await got
      expect(error).to.equal(undefined)
      expect(frames).to.have.length(sent.length)
      expect(largest).to.be.at.most(Math.ceil((256 * 1024) / (RECORD_HEADER_BYTES + TAG_BYTES)) + 1)
    })

    it('stops at a record longer than a block, which no data stream carries', async function () {
      const got = collect()
      pair.client.write(Buffer.concat([record(RecordType.Block, 10), record(RecordType.FileBatch, BLOCK + 1)]))
      const { frames, error } = await got
      expect(frames.length).to.be.at.most(1)
      expect(error?.code).to.equal('ESCP_ERR_PROTOCOL')
    })

    it('stops at a header that breaks the protocol', async function () {
      const bad = record(RecordType.Block, 10)
      bad[0] = 200
      const got = collect()
      pair.client.write(Buffer.concat([record(RecordType.Block, BLOCK), bad]))
      const { frames, error } = await got
      expect(frames.length).to.be.at.most(1)
      expect(error?.code).to.equal('ESCP_ERR_PROTOCOL')
    })
  })
}
