// The 32-byte record header. It travels in clear and is the AAD of its record, so every field
// is authenticated; the decoder checks it before allocating anything for the payload.
import { escpError } from '../errors'
import { FLAG_COMPRESSED, KNOWN_FLAGS, MAX_BLOCK_BYTES, MAX_BUNDLE_FILES, MAX_META_PAYLOAD_BYTES, RECORD_HEADER_BYTES, RecordType, STREAM_PREFIX_BYTES } from './constants'

export interface RecordHeader {
  type: RecordType
  flags: number
  /** Ciphertext bytes after the header, the 16-byte tag not included. */
  length: number
  /** Block and Bundle records: file bytes the record stands for (after decompression). Otherwise 0. */
  rawLength: number
  /** Block: the file's entry id; Bundle: the first of its files' consecutive entry ids. */
  fileId: bigint
  /** Block: the block's offset in its file; Bundle: how many files it holds. */
  offset: bigint
}

export function encodeHeader(h: RecordHeader, into: Buffer = Buffer.allocUnsafe(RECORD_HEADER_BYTES)): Buffer {
  into.writeUInt8(h.type, 0)
  into.writeUInt8(h.flags, 1)
  into.writeUInt16BE(0, 2)
  into.writeUInt32BE(h.length, 4)
  into.writeUInt32BE(h.rawLength, 8)
  into.writeUInt32BE(0, 12)
  into.writeBigUInt64BE(h.fileId, 16)
  into.writeBigUInt64BE(h.offset, 24)
  return into
}

/** Largest ciphertext a record of `type` may carry, given the session's block size. */
export function maxRecordLength(type: RecordType, blockSizeBytes: number): number {
  switch (type) {
    case RecordType.Block:
    case RecordType.Bundle:
      // A compressed block that grew is sent raw, so a block record never exceeds the block.
      return blockSizeBytes
    case RecordType.Hello:
      return STREAM_PREFIX_BYTES
    case RecordType.Keepalive:
    case RecordType.Rekey:
    case RecordType.End:
      return 0
    default:
      return MAX_META_PAYLOAD_BYTES
  }
}

/** Decodes and checks a header; any violation is ESCP_ERR_PROTOCOL before a byte is allocated. */
export function decodeHeader(buf: Uint8Array, blockSizeBytes: number = MAX_BLOCK_BYTES): RecordHeader {
  if (buf.byteLength < RECORD_HEADER_BYTES) throw escpError('ESCP_ERR_PROTOCOL', `record header of ${buf.byteLength} bytes`)
  const b = Buffer.from(buf.buffer, buf.byteOffset, RECORD_HEADER_BYTES)
  const type = b.readUInt8(0)
  if (RecordType[type] === undefined) throw escpError('ESCP_ERR_PROTOCOL', `unknown record type ${type}`)
  const flags = b.readUInt8(1)
  if ((flags & ~KNOWN_FLAGS) !== 0) throw escpError('ESCP_ERR_PROTOCOL', `unknown record flags 0x${flags.toString(16)}`)
  if (b.readUInt16BE(2) !== 0 || b.readUInt32BE(12) !== 0) throw escpError('ESCP_ERR_PROTOCOL', 'reserved header bits are set')
  const length = b.readUInt32BE(4)
  const max = maxRecordLength(type, blockSizeBytes)
  if (length > max) throw escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[type]} record of ${length} bytes exceeds the limit of ${max}`)
  const rawLength = b.readUInt32BE(8)
  const carriesFiles = type === RecordType.Block || type === RecordType.Bundle
  if (carriesFiles) {
    if (rawLength > blockSizeBytes) throw escpError('ESCP_ERR_PROTOCOL', `a ${type === RecordType.Block ? 'block' : 'bundle'} of ${rawLength} bytes exceeds the block size ${blockSizeBytes}`)
    if ((flags & FLAG_COMPRESSED) === 0 && rawLength !== length) throw escpError('ESCP_ERR_PROTOCOL', `an uncompressed ${type === RecordType.Block ? 'block' : 'bundle'} whose lengths differ`)
  }
  const fileId = b.readBigUInt64BE(16)
  const offset = b.readBigUInt64BE(24)
  if (type === RecordType.Bundle && (offset < 1n || offset > BigInt(MAX_BUNDLE_FILES))) {
    throw escpError('ESCP_ERR_PROTOCOL', `a bundle of ${offset} files, where one holds 1 to ${MAX_BUNDLE_FILES}`)
  }
  if (!carriesFiles && (rawLength !== 0 || flags !== 0 || fileId !== 0n || offset !== 0n)) {
    throw escpError('ESCP_ERR_PROTOCOL', `a ${RecordType[type]} record with block fields set`)
  }
  return { type, flags, length, rawLength, fileId, offset }
}
