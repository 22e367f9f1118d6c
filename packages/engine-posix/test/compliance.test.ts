// The engine contract with O_DIRECT, on a disk file system and on tmpfs (which refuses O_DIRECT
// before Linux 6.6); buffered writes going uncached, and falling back where that is refused.
import fs from 'node:fs'
import { engineCompliance, uncachedWriteSuite } from '@escp/core/testing'
import { PosixEngine } from '../src'

engineCompliance('posix (disk)', () => new PosixEngine(), { stores: true, direct: true })
if (fs.existsSync('/dev/shm')) engineCompliance('posix (tmpfs)', () => new PosixEngine(), { stores: true, direct: true, tmpDir: '/dev/shm' })
uncachedWriteSuite('posix', (uncachedWrites) => new PosixEngine(undefined, { uncachedWrites }))
