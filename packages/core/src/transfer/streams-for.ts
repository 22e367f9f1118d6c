// How many data streams a copy needs when none are asked for. A stream that no block comes to
// costs a worker thread on each side, a TCP connection and its keys, and carries nothing: a
// one-byte push through sshd took 615 ms with 4 streams and 472 ms with one (7 runs each, taking
// turns, on 2 cores). Light on purpose: the escp command sizes the early start of a copy's
// workers (or of the remote server's, through ssh) with it before the rest of escp loads.
import fs from 'node:fs'
import { BUNDLE_FILE_FRACTION } from './options'

/** Beyond this many sources, a copy gets the streams it would have had: each is not looked at. */
const SOURCES_LOOKED_AT = 64

/**
 * The streams for sending `sources` (local paths) in blocks of `blockSizeBytes`: `most`, or as
 * many as the blocks they make when those are fewer. Only a few regular files are counted (each
 * stat'ed, following symlinks as the sender does for a named source): files of at most a
 * fraction of a block go together in bundles of up to a block, a larger file makes a block per
 * block size. A directory, a name that cannot be stat'ed (the copy then reports it), or more
 * than a few sources: `most`. At least 1.
 */
export function streamsFor(sources: readonly string[], blockSizeBytes: number, most: number): number {
  if (sources.length > SOURCES_LOOKED_AT) return most
  let blocks = 0
  let bundledBytes = 0
  for (const source of sources) {
    let st: fs.Stats
    try {
      st = fs.statSync(source)
    } catch {
      return most
    }
    if (!st.isFile()) return most
    if (st.size * BUNDLE_FILE_FRACTION <= blockSizeBytes) bundledBytes += st.size
    else blocks += Math.ceil(st.size / blockSizeBytes)
    if (blocks + Math.ceil(bundledBytes / blockSizeBytes) >= most) return most
  }
  return Math.max(1, blocks + Math.ceil(bundledBytes / blockSizeBytes))
}
