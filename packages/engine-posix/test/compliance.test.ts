// The engine contract with O_DIRECT, on a disk file system and on tmpfs (which refuses O_DIRECT
// before Linux 6.6).
import fs from 'node:fs'
import { engineCompliance } from '@escp/core/testing'
import { PosixEngine } from '../src'

engineCompliance('posix (disk)', () => new PosixEngine(), { stores: true, direct: true })
if (fs.existsSync('/dev/shm')) engineCompliance('posix (tmpfs)', () => new PosixEngine(), { stores: true, direct: true, tmpDir: '/dev/shm' })
