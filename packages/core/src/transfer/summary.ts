// What a transfer reports while it runs and when it ends.
import type { EscpError } from '../errors'
import type { SourceIssue } from './enumerate'

export interface TransferProgress {
  /** File bytes sent (read and sealed) so far. */
  bytesDone: number
  /** File bytes found so far, less the holes skipped in sparse files; final once `enumerationDone`. */
  bytesTotal: number
  filesDone: number
  filesTotal: number
  enumerationDone: boolean
  elapsedMs: number
}

export interface FileFailure {
  path: string
  error: EscpError
}

export interface TransferSummary {
  /** True only when every entry arrived and was verified. */
  ok: boolean
  entries: number
  entriesOk: number
  failures: FileFailure[]
  warnings: SourceIssue[]
  /** File bytes read at the sender and sent. */
  bytes: number
  /**
   * File bytes not sent because they lie in holes of sparse sources, which the receiver
   * recreates as holes; `bytes` + `holeBytes` is the size of the files sent.
   */
  holeBytes: number
  /** Block payload bytes sent (after compression), records' headers and tags not counted. */
  wireBytes: number
  elapsedMs: number
  streams: number
  cipher: string
  checksum: string
  compressor: string
}
