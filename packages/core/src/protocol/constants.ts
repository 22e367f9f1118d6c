// Numbers of the escp wire protocol 1.x; docs/protocol.md explains each.

export const PROTOCOL_MAJOR = 1
/**
 * 1.1 adds sparse files: a sender may skip blocks that lie in holes (FileSpec.sparse_bytes).
 * 1.2 adds files whose size is known only at their end (FileSpec.size_at_end).
 * 1.3 adds bundles: several small whole files in one data record (RecordType.Bundle).
 * 1.4 puts each bundled file's digest in its bundle, and such a file gets no FileDone; a
 * Verdicts record may answer entries ok as runs of ids.
 */
export const PROTOCOL_MINOR = 4
/** The first minor version in which a sender may skip the holes of sparse files. */
export const MINOR_SPARSE_FILES = 1
/** The first minor version in which a sender may announce a file whose size it learns at its end. */
export const MINOR_SIZE_AT_END = 2
/** The first minor version in which a sender may send small files together in Bundle records. */
export const MINOR_BUNDLES = 3
/** The first minor version in which a bundle ends with its files' digests, and its files get no FileDone. */
export const MINOR_BUNDLE_DIGESTS = 4
/** The first minor version in which a Verdicts record may answer entries ok as runs of ids. */
export const MINOR_OK_RUNS = 4
/** A bundled file's status in a 1.4 bundle's trailer: read whole, its digest follows. */
export const BUNDLE_FILE_READ = 0
/** A bundled file's status in a 1.4 bundle's trailer: unreadable, sent as zeros; an Error report names it. */
export const BUNDLE_FILE_UNREADABLE = 1
/** Files in one Bundle record at most: bounds a receiver's work per record. */
export const MAX_BUNDLE_FILES = 1024

/** Written by the server before anything else on the control channel. */
export const CONTROL_PREAMBLE = Buffer.from('ESCP\x00CTL', 'latin1')
/** Largest control frame; control messages are small, so anything bigger is an attack or a bug. */
export const MAX_CONTROL_FRAME_BYTES = 1 << 20

/** First bytes of every data or meta stream, before its HELLO record. */
export const STREAM_MAGIC = Buffer.from('ESCPSTRM', 'latin1')
/** magic(8) + major(2) + stream index(2) + session id(16) */
export const STREAM_PREFIX_BYTES = 28
export const SESSION_ID_BYTES = 16
export const SESSION_SECRET_BYTES = 32

export const RECORD_HEADER_BYTES = 32
export const NONCE_BYTES = 12
export const TAG_BYTES = 16

export enum RecordType {
  Hello = 1,
  Block = 2,
  FileBatch = 3,
  FileDone = 4,
  Verdicts = 5,
  Error = 6,
  Keepalive = 7,
  End = 8,
  Rekey = 9,
  BlockDigests = 10,
  SessionEnd = 11,
  /** Whole files of consecutive entries in one record (1.3): fileId is the first, offset the count. */
  Bundle = 12,
}

/** Record flags (header byte 1). */
export const FLAG_COMPRESSED = 0x01
export const KNOWN_FLAGS = FLAG_COMPRESSED

export const MIN_BLOCK_BYTES = 64 * 1024
export const MAX_BLOCK_BYTES = 64 * 1024 * 1024
export const DEFAULT_BLOCK_BYTES = 1024 * 1024
/** Meta payloads are batched; a batch larger than this is split by the sender. */
export const MAX_META_PAYLOAD_BYTES = 16 * 1024 * 1024
/** At least the 28 of EScp; a session uses streams 1..N for data and 0 for meta. */
export const MAX_DATA_STREAMS = 128
export const META_STREAM_INDEX = 0
/** Blocks in flight per data stream; each side sizes its buffer pools from it. */
export const MAX_QUEUE_DEPTH = 64

export const HELLO_TIMEOUT_MS = 5000

/**
 * A direction's key is replaced (REKEY record, then the next epoch's key) once it has sealed
 * 2^34 bytes (16 GiB) or 2^32 records, far inside AES-GCM's usage limits. Counters are
 * 64-bit and restart with each epoch, so a nonce is never reused; a peer that keeps sending
 * past 2^40 records on one key is refused.
 */
export const REKEY_AFTER_BYTES = 2 ** 34
export const REKEY_AFTER_RECORDS = 2 ** 32
export const MAX_RECORDS_PER_KEY = 2 ** 40
