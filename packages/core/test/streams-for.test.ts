// How many streams a copy opens when none are asked for: no more than the blocks its files make.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { streamsFor } from '../src/transfer/streams-for'

const MiB = 2 ** 20

describe('the streams of a copy that asks for none', function () {
  let work: string
  const file = (name: string, bytes: number) => {
    const p = path.join(work, name)
    fs.writeFileSync(p, Buffer.alloc(bytes, 1))
    return p
  }

  beforeEach(function () {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-streams-'))
  })
  afterEach(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  it('opens one stream for one small file, or an empty one', function () {
    expect(streamsFor([file('one', 1)], MiB, 4)).to.equal(1)
    expect(streamsFor([file('empty', 0)], MiB, 4)).to.equal(1)
  })

  it('opens one per block of a larger file, up to the most it may', function () {
    expect(streamsFor([file('a', 2 * MiB + 1)], MiB, 4)).to.equal(3)
    expect(streamsFor([file('b', 3 * MiB)], MiB, 4)).to.equal(3)
    expect(streamsFor([file('c', 9 * MiB)], MiB, 4)).to.equal(4)
    expect(streamsFor([path.join(work, 'b')], 512 * 1024, 4)).to.equal(4)
  })

  it('counts small files as the bundles of up to a block they go in, and larger ones by their blocks', function () {
    const small = Array.from({ length: 10 }, (_, i) => file(`s${i}`, 200 * 1024))
    // 10 × 200 KiB of files of at most a quarter block: 2 bundles.
    expect(streamsFor(small, MiB, 4)).to.equal(2)
    // Over a quarter block, each goes as a block of its own.
    expect(streamsFor([file('q1', 300 * 1024), file('q2', 300 * 1024)], MiB, 4)).to.equal(2)
  })

  it('follows a named symlink to its file, as the sender does', function () {
    fs.symlinkSync(file('target', 3 * MiB), path.join(work, 'link'))
    expect(streamsFor([path.join(work, 'link')], MiB, 4)).to.equal(3)
  })

  it('opens the most it may for a directory, a missing name or many sources, whatever they hold', function () {
    fs.mkdirSync(path.join(work, 'dir'))
    expect(streamsFor([path.join(work, 'dir')], MiB, 4)).to.equal(4)
    expect(streamsFor([file('x', 1), path.join(work, 'missing')], MiB, 4)).to.equal(4)
    const many = Array.from({ length: 65 }, (_, i) => file(`m${i}`, 1))
    expect(streamsFor(many, MiB, 4)).to.equal(4)
    expect(streamsFor(many.slice(0, 64), MiB, 4)).to.equal(1)
  })

  it('never opens more than the most it may, nor fewer than one', function () {
    expect(streamsFor([file('big', 8 * MiB)], MiB, 2)).to.equal(2)
    expect(streamsFor([file('tiny', 1)], MiB, 1)).to.equal(1)
  })
})
