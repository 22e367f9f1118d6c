// A read benchmark measures the disk only if the file is not in the page cache: before each
// read its pages are dropped, and what is still cached is measured and reported with the figure.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

export interface CacheDrop {
  /** Bytes of the file still in the page cache after the drop; null when fincore is missing. */
  residentBytes: number | null
  /**
   * 'fadvise': posix_fadvise(POSIX_FADV_DONTNEED) on the file alone (dd iflag=nocache count=0),
   * which needs no root and leaves other people's cache alone; 'drop_caches': that left pages
   * behind, so the whole clean page cache was dropped (root only).
   */
  method: 'fadvise' | 'drop_caches'
}

/** Bytes of `file` in the page cache (util-linux fincore), or null when fincore is missing. */
export async function residentBytes(file: string): Promise<number | null> {
  try {
    const { stdout } = await execFileP('fincore', ['--bytes', '--noheadings', '--output', 'RES', file])
    const n = Number(stdout.trim())
    return Number.isFinite(n) ? n : null
  } catch {
    return null
  }
}

/** Drops `file`'s clean pages from the page cache; dirty pages are written first (sync). */
export async function dropFileCache(file: string): Promise<CacheDrop> {
  // FADV_DONTNEED skips dirty pages, so what was written lately goes to the disk first.
  await execFileP('sync', [file])
  await execFileP('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'])
  const left = await residentBytes(file)
  if (left !== null && left > 0 && process.getuid?.() === 0) {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '1')
    return { residentBytes: await residentBytes(file), method: 'drop_caches' }
  }
  return { residentBytes: left, method: 'fadvise' }
}
