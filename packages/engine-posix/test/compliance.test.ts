// The engine contract, on a disk file system (O_DIRECT taken) and on tmpfs (O_DIRECT refused).
import fs from 'node:fs'
import { engineCompliance } from '@escp/core/testing'
import { PosixEngine } from '../src'

engineCompliance('posix (disk)', () => new PosixEngine(), { stores: true })
if (fs.existsSync('/dev/shm')) engineCompliance('posix (tmpfs)', () => new PosixEngine(), { stores: true, tmpDir: '/dev/shm' })
