// The engine contract, on a disk file system (O_DIRECT taken) and on tmpfs (O_DIRECT refused
// before Linux 6.6).
import fs from 'node:fs'
import { engineCompliance } from '@escp/core/testing'
import { UringEngine } from '../src'

engineCompliance('uring (disk)', () => new UringEngine(), { stores: true, tmpDir: '/tmp' })
if (fs.existsSync('/dev/shm')) engineCompliance('uring (tmpfs)', () => new UringEngine(), { stores: true, tmpDir: '/dev/shm' })
