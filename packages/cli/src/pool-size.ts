// The default size of libuv's thread pool for escp processes: one thread per core beyond the
// first, at most four. On 2 cores a single pool thread measured fastest for both one large file
// (no writers contending for the file's inode lock) and 10,000 small files (fewer switches).
import os from 'node:os'

export function defaultPoolSize(cores: number = os.availableParallelism()): string {
  return String(Math.max(1, Math.min(4, cores - 1)))
}
