'use strict'
// The main job, end to end on this machine: makes a data set, copies it with the escp command
// in loopback mode (a child receiver, 4 encrypted TCP streams on loopback, xxh64 verification),
// and checks the copy byte for byte.
const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = process.argv[2] ?? path.join(os.tmpdir(), 'escp-demo')
const src = path.join(root, 'data')
const dst = path.join(root, 'copy')
const sizeMiB = Number(process.env.ESCP_DEMO_MIB ?? 1024)

function sha256(file) {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n))
  fs.closeSync(fd)
  return h.digest('hex')
}

fs.rmSync(root, { recursive: true, force: true })
fs.mkdirSync(path.join(src, 'logs'), { recursive: true })
process.stderr.write(`escp demo: writing ${sizeMiB} MiB of random data and a small tree under ${src}\n`)
const fd = fs.openSync(path.join(src, 'big.bin'), 'w')
for (let i = 0; i < sizeMiB; i++) fs.writeSync(fd, crypto.randomBytes(1 << 20))
fs.closeSync(fd)
for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(src, 'logs', `app-${i}.log`), `line ${i}\n`.repeat(1000 + i))

const args = [path.join(__dirname, '..', 'packages', 'cli', 'bin', 'run.js'), '-r', '-p', src, dst]
process.stderr.write(`escp demo: escp -r -p ${src} ${dst}\n`)
const run = spawnSync(process.execPath, args, { stdio: 'inherit' })
if (run.status !== 0) {
  process.stderr.write(`escp demo: escp exited with ${run.status}\n`)
  process.exit(run.status ?? 1)
}
const same = sha256(path.join(src, 'big.bin')) === sha256(path.join(dst, 'big.bin')) && fs.readdirSync(path.join(dst, 'logs')).length === 100
process.stderr.write(same ? 'escp demo: the copy matches the source (sha256)\n' : 'escp demo: MISMATCH\n')
fs.rmSync(root, { recursive: true, force: true })
process.exit(same ? 0 : 1)
