// Reads or writes one whole file through an IoEngine in a process of its own:
// `node engine-io.cjs '<job as JSON>'` (the job: see EngineJob in engine-io.ts). The engine is
// driven as a stream worker drives it: buffers from its own pool, `queueDepth` reads or writes
// in flight on one handle. From inside it reports the I/O alone, from the open to the last
// close (for a write, through truncate, finish() and an fsync of the file), with this process's
// CPU over the same span, all threads included: Node's start-up and loading the plugins are
// left out. Plain JavaScript on purpose, as escp-copy.cjs: no TypeScript loader in the figures.
'use strict'
const crypto = require('node:crypto')
const fs = require('node:fs')
const { loadPlugins } = require('@escp/core')

/** The descriptors this process holds on `file`, and how many of them were opened with O_DIRECT. */
function descriptorsOn(file) {
  const target = fs.realpathSync(file)
  let count = 0
  let direct = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let link
    try {
      link = fs.readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue
    }
    if (link !== target) continue
    count++
    // fdinfo's flags are octal, as open(2) took them.
    const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s*([0-7]+)$/m)
    if (flags && (parseInt(flags[1], 8) & fs.constants.O_DIRECT) !== 0) direct++
  }
  return { count, direct }
}

/** Runs `each(i)` for i in [0, count) with at most `depth` calls in flight, each with its own buffer. */
async function inFlight(count, depth, pool, each) {
  let next = 0
  const lanes = Array.from({ length: Math.min(depth, count) }, async () => {
    const buf = pool.acquire()
    try {
      for (let i = next++; i < count; i = next++) await each(i, buf)
    } finally {
      pool.release(buf)
    }
  })
  await Promise.all(lanes)
}

async function main() {
  const job = JSON.parse(process.argv[2])
  const { registry } = await loadPlugins({ plugins: job.plugins })
  const engine = registry.resolve('engine', job.engine)
  const pool = engine.createBufferPool(job.blockBytes, job.queueDepth)
  const blocks = Math.ceil(job.sizeBytes / job.blockBytes)
  const lengthOf = (i) => Math.min(job.blockBytes, job.sizeBytes - i * job.blockBytes)
  if (job.op === 'write') {
    // Random bytes, made before the clock starts: what is written costs nothing to produce.
    const bufs = Array.from({ length: job.queueDepth }, () => pool.acquire())
    for (const b of bufs) crypto.randomFillSync(b)
    for (const b of bufs) pool.release(b)
  }

  let descriptors = null
  let probeNs = 0n
  const probe = () => {
    const t = process.hrtime.bigint()
    descriptors = descriptorsOn(job.path)
    probeNs += process.hrtime.bigint() - t
  }
  const cpuBefore = process.cpuUsage()
  const start = process.hrtime.bigint()
  let bytes = 0
  if (job.op === 'read') {
    const h = await engine.openRead(job.path, { direct: job.direct })
    if (h.sizeBytes !== job.sizeBytes) throw new Error(`${job.path} has ${h.sizeBytes} bytes, the job says ${job.sizeBytes}`)
    try {
      await inFlight(blocks, job.queueDepth, pool, async (i, buf) => {
        const n = await h.read(buf, i * job.blockBytes)
        if (n !== lengthOf(i)) throw new Error(`read ${n} bytes at offset ${i * job.blockBytes}, expected ${lengthOf(i)}`)
        bytes += n
      })
      probe()
    } finally {
      await h.close()
    }
  } else {
    const h = await engine.openWrite(job.path, { direct: job.direct, sizeBytes: job.sizeBytes })
    try {
      await inFlight(blocks, job.queueDepth, pool, async (i, buf) => {
        const n = lengthOf(i)
        await h.write(n === buf.byteLength ? buf : buf.subarray(0, n), i * job.blockBytes)
        bytes += n
      })
      probe()
      await h.truncate(job.sizeBytes)
    } catch (err) {
      await h.close().catch(() => {})
      throw err
    }
    await h.finish()
    // The contract leaves flushing to the engine; an fsync of the file makes every engine's
    // figure include getting the data to the disk, as dd conv=fsync and fio end_fsync do.
    const fd = fs.openSync(job.path, 'r')
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    const size = fs.statSync(job.path).size
    if (size !== job.sizeBytes) throw new Error(`the written file has ${size} bytes, expected ${job.sizeBytes}`)
  }
  const seconds = Number(process.hrtime.bigint() - start - probeNs) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  const report = { seconds, bytes, cpuUserSeconds: cpu.user / 1e6, cpuSystemSeconds: cpu.system / 1e6, descriptors }
  process.stdout.write(`${JSON.stringify(report)}\n`)
}

main().catch((err) => {
  process.stderr.write(`engine-io: ${err && err.code ? `${err.code}: ` : ''}${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
