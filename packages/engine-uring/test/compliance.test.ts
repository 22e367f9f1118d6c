// The engine contract with O_DIRECT, on a disk file system and on tmpfs (which refuses O_DIRECT
// before Linux 6.6); buffered writes going uncached, and falling back where that is refused.
import fs from 'node:fs'
import { engineCompliance, uncachedWriteSuite } from '@escp/core/testing'
import { UringEngine } from '../src'

engineCompliance('uring (disk)', () => new UringEngine(), { stores: true, direct: true, tmpDir: '/tmp' })
if (fs.existsSync('/dev/shm')) engineCompliance('uring (tmpfs)', () => new UringEngine(), { stores: true, direct: true, tmpDir: '/dev/shm' })
uncachedWriteSuite('uring', (uncachedWrites) => new UringEngine({ uncachedWrites }))
