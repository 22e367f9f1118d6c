// For engines that write buffered blocks uncached (RWF_DONTCACHE, Linux 6.14): the pages a write
// fills are written back at once and dropped once clean. Checked from outside the engine: which
// file systems take the flag is asked of Python's os.pwritev, and what stays in the page cache
// of util-linux's fincore.
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { IoEngine } from '../contracts/io-engine'
import { mountScratch, skipBecause, skipIfUnavailable } from './helpers'

const MiB = 1024 ** 2
const RWF_DONTCACHE = 0x80

/** Why a buffered write to a new file in `dir` cannot go uncached here, or null when it can. */
export function uncachedWriteRefusal(dir: string): string | null {
  const probe = path.join(dir, '.uncached-probe')
  const script = `import os\nfd = os.open(${JSON.stringify(probe)}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\nos.pwritev(fd, [bytes(4096)], 0, ${RWF_DONTCACHE})`
  const r = spawnSync('python3', ['-c', script], { encoding: 'utf8' })
  fs.rmSync(probe, { force: true })
  if (r.error) return `python3, which asks the kernel, is not here (${r.error.message})`
  if (r.status === 0) return null
  const said = r.stderr.trim().split('\n').pop() ?? ''
  return /Errno 95/.test(said) ? `this kernel or file system takes no uncached writes (RWF_DONTCACHE: ${said})` : `python3 could not ask: ${said}`
}

/** Bytes of `file` in the page cache, or why that cannot be told here. */
export function pageCacheBytes(file: string): number | string {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' })
  if (r.error) return `fincore (util-linux) is not here to count pages in the cache (${r.error.message})`
  const bytes = Number(r.stdout.trim())
  return r.status === 0 && Number.isInteger(bytes) ? bytes : `fincore failed: ${r.stderr.trim()}`
}

/** `make(uncachedWrites)`: the engine, made to write uncached where it can, or not. */
export function uncachedWriteSuite(label: string, make: (uncachedWrites: boolean) => IoEngine | Promise<IoEngine>): void {
  describe(`uncached buffered writes: ${label}`, function () {
    let engine: IoEngine
    let dir: string

    before(async function () {
      engine = await make(true)
      skipIfUnavailable(this, `engine '${engine.name}'`, engine.available())
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `escp-uncached-${engine.name}-`))
    })

    after(function () {
      if (dir) fs.rmSync(dir, { recursive: true, force: true })
    })

    let control: string | null | undefined

    /**
     * Why fincore cannot tell what stays in the page cache here, or null when it can: asked once,
     * of a file of 16 MiB written through the cache and back on the disk.
     */
    function cachedControl(): string | null {
      if (control !== undefined) return control
      const cached = path.join(dir, 'cached')
      fs.writeFileSync(cached, crypto.randomBytes(16 * MiB))
      const fd = fs.openSync(cached, 'r')
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      const kept = pageCacheBytes(cached)
      control = typeof kept === 'string' ? kept : kept < 15 * MiB ? `a file written through the cache kept only ${kept} of its ${16 * MiB} bytes there` : null
      return control
    }

    // Blocks of random bytes written through the engine, buffered; `whileOpen` runs once the
    // file is written back, while the handle is still open (its close may drop pages itself).
    async function writeBuffered(file: string, blocks: number, whileOpen: () => void = () => {}, through: IoEngine = engine): Promise<Buffer> {
      const data = crypto.randomBytes(blocks * MiB)
      const pool = through.createBufferPool(MiB, 1)
      const buf = pool.acquire()
      const w = await through.openWrite(file, { direct: false, sizeBytes: data.length })
      try {
        for (let i = 0; i < blocks; i++) {
          buf.set(data.subarray(i * MiB, (i + 1) * MiB))
          await w.write(buf, i * MiB)
        }
        const fd = fs.openSync(file, 'r')
        try {
          fs.fsyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
        whileOpen()
      } finally {
        pool.release(buf)
        await w.close()
      }
      return data
    }

    /** Bytes of a file of 16 MiB in the page cache once `through` wrote it and it was written back (the bytes checked). */
    async function residentAfterWriting(file: string, through: IoEngine): Promise<number | string> {
      let resident: number | string = ''
      const data = await writeBuffered(file, 16, () => {
        resident = pageCacheBytes(file)
      }, through)
      expect(fs.readFileSync(file).equals(data), 'the bytes written').to.equal(true)
      return resident
    }

    it('says whether its writes to a directory go uncached: where the file system takes them, and not on a tmpfs', async function () {
      if (!engine.writesUncached) throw new Error(`engine '${engine.name}' does not say whether its writes go uncached (writesUncached)`)
      expect(await engine.writesUncached(dir), uncachedWriteRefusal(dir) ?? 'the kernel takes uncached writes there').to.equal(uncachedWriteRefusal(dir) === null)
      const scratch = mountScratch('tmpfs', ['size=16m'])
      if (typeof scratch === 'string') return skipBecause(this, scratch)
      try {
        expect(await engine.writesUncached(scratch.dir)).to.equal(uncachedWriteRefusal(scratch.dir) === null)
      } finally {
        scratch.unmount()
      }
    })

    it('leaves none of a file it wrote in the page cache once the file is written back', async function () {
      const refusal = uncachedWriteRefusal(dir)
      if (refusal) return skipBecause(this, refusal)
      // The same bytes written through the cache stay there: what fincore says means something here.
      const control = cachedControl()
      if (control) return skipBecause(this, control)
      expect(await residentAfterWriting(path.join(dir, 'uncached'), engine), 'bytes left in the page cache').to.be.a('number').below(MiB)
    })

    it('keeps its writes in the page cache when made not to write uncached, and says so', async function () {
      const cachedEngine = await make(false)
      expect(await cachedEngine.writesUncached?.(dir)).to.equal(false)
      const control = cachedControl()
      if (control) return skipBecause(this, control)
      expect(await residentAfterWriting(path.join(dir, 'kept'), cachedEngine), 'bytes in the page cache').to.be.a('number').at.least(15 * MiB)
    })

    it('writes through the cache where the file system refuses uncached writes (tmpfs)', async function () {
      const scratch = mountScratch('tmpfs', ['size=64m'])
      if (typeof scratch === 'string') return skipBecause(this, scratch)
      try {
        if (uncachedWriteRefusal(scratch.dir) === null) return skipBecause(this, 'this tmpfs takes uncached writes: nothing falls back')
        const file = path.join(scratch.dir, 'through-the-cache')
        const data = await writeBuffered(file, 4)
        expect(fs.readFileSync(file).equals(data)).to.equal(true)
      } finally {
        scratch.unmount()
      }
    })
  })
}
