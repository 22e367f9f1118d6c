// The cpumask: stream workers (and their engine's threads) run only on the CPUs given, on both
// ends of a local copy; a set naming CPUs this host lacks is refused before anything starts.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { copy, parseCpuSet } from '@escp/core'
import { expectCode, skipBecause } from '@escp/core/testing'
import { sha256File, tempDir, writeRandom } from './helpers/trees'

const CLI = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'run.js')

/** CPU sets (Cpus_allowed_list) of the threads of process `pid`. */
function threadCpuSets(pid: number | 'self'): string[] {
  const out: string[] = []
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))
      if (m) out.push(m[1])
    } catch {
      // the thread ended meanwhile
    }
  }
  return out
}

describe('CPU affinity (cpumask)', function () {
  this.timeout(60_000)
  const cpus = os.cpus().length

  it('reads CPU lists and hex masks, and refuses CPUs this host lacks', async function () {
    expect(parseCpuSet('0', 4)).to.deep.equal([0])
    expect(parseCpuSet('0-2,3', 4)).to.deep.equal([0, 1, 2, 3])
    expect(parseCpuSet('0x5', 4)).to.deep.equal([0, 2])
    for (const bad of ['', 'x', '3-1', '0x0', '4', '1,,2']) await expectCode(() => parseCpuSet(bad, 4), 'ESCP_ERR_BAD_ARGUMENT')
  })

  it('keeps this side\'s stream workers and their engine\'s I/O threads on the CPUs given', async function () {
    if (process.platform !== 'linux' || spawnSync('taskset', ['-V']).status !== 0) skipBecause(this, 'CPU affinity needs Linux and taskset (util-linux)')
    const work = tempDir('affinity')
    try {
      const file = path.join(work, 'f')
      writeRandom(file, 48 * 1024 * 1024)
      const all = threadCpuSets('self')
      let seen: string[] = []
      const summary = await copy({
        sources: [file],
        destination: path.join(work, 'copy'),
        options: { cpus: [cpus - 1], plugins: [require.resolve('@escp/engine-posix')], blockSizeBytes: 64 * 1024, limitBytesPerSec: 64 * 1024 * 1024 },
        onProgress: () => {
          if (seen.length === 0) seen = threadCpuSets('self')
        },
      })
      expect(summary.ok).to.equal(true)
      expect(sha256File(path.join(work, 'copy'))).to.equal(sha256File(file))
      const pinned = seen.filter((s) => s === String(cpus - 1)).length
      // The worker thread itself, and the posix engine's I/O threads it started.
      expect(pinned, `thread CPU sets during the copy: ${seen.join(' ')}`).to.be.at.least(cpus > 1 ? 2 : 1)
      if (cpus > 1) expect(all.every((s) => s !== String(cpus - 1)), 'nothing was pinned before').to.equal(true)
    } finally {
      fs.rmSync(work, { recursive: true, force: true })
    }
  })

  it('refuses --cpumask naming a CPU this host lacks, with exit status 2 and nothing copied', function () {
    const work = tempDir('affinity-cli')
    try {
      fs.writeFileSync(path.join(work, 'a'), 'x')
      const r = spawnSync(process.execPath, [CLI, '--cpumask', String(cpus + 3), path.join(work, 'a'), path.join(work, 'b')], { encoding: 'utf8' })
      expect(r.status).to.equal(2)
      expect(r.stderr).to.match(/ESCP_ERR_BAD_ARGUMENT: CPU set '\d+' names CPU \d+, but this host has CPUs 0-/)
      expect(fs.existsSync(path.join(work, 'b'))).to.equal(false)
    } finally {
      fs.rmSync(work, { recursive: true, force: true })
    }
  })
})
