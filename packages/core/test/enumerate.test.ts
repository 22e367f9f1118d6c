// The sender's walk over an engine that lists directories itself: which directories it asks to
// have listed, and whether a symlink at a directory's name may be followed there.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import type { DirectoryEntry, EnginePath, IoEngine, ListDirectoryOptions } from '../src/contracts/io-engine'
import { enumerateSources, factsOf } from '../src/transfer/enumerate'
import type { SourceIssue } from '../src/transfer/enumerate'

/** lstat of each entry of `dir`, in byte order of the names, as an engine's listing gives them. */
function listWithFs(dir: EnginePath): DirectoryEntry[] {
  return fs
    .readdirSync(dir, { encoding: 'buffer' })
    .sort(Buffer.compare)
    .map((name) => {
      const full = Buffer.concat([Buffer.from(dir), Buffer.from('/'), name])
      const facts = factsOf(name, fs.lstatSync(full, { bigint: true }))
      return facts.type === 'symlink' ? { ...facts, linkTarget: fs.readlinkSync(full, { encoding: 'buffer' }) } : facts
    })
}

describe('the sender walk through an engine that lists directories', function () {
  let work: string

  beforeEach(function () {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-walk-'))
  })
  afterEach(function () {
    fs.rmSync(work, { recursive: true, force: true })
  })

  it('follows a source that is a symlink to its real path, and asks for every directory below it to be listed without following one', async function () {
    const real = path.join(work, 'real')
    fs.mkdirSync(path.join(real, 'sub', 'deeper'), { recursive: true })
    fs.writeFileSync(path.join(real, 'a'), 'a')
    fs.writeFileSync(path.join(real, 'sub', 'b'), 'b')
    fs.symlinkSync('sub', path.join(real, 'to-sub'))
    const source = path.join(work, 'link')
    fs.symlinkSync(real, source)
    const asked: Array<[string, boolean]> = []
    const engine = {
      name: 'listing',
      listDirectory: (dir: EnginePath, options?: ListDirectoryOptions) => {
        asked.push([String(dir), options?.noFollow === true])
        return Promise.resolve(listWithFs(dir))
      },
    } as unknown as IoEngine
    const issues: SourceIssue[] = []
    const sent: string[] = []
    for await (const e of enumerateSources([source], { recursive: true, onIssue: (i) => issues.push(i), engine })) sent.push(`${e.type} ${e.name.toString()}`)
    expect(issues).to.deep.equal([])
    // Read at its real path, which a symlink planted since cannot redirect.
    expect(asked).to.deep.equal([
      [real, false],
      [path.join(real, 'sub'), true],
      [path.join(real, 'sub', 'deeper'), true],
    ])
    // Inside the tree a symlink goes as a link, never followed.
    expect(sent).to.deep.equal(['directory link', 'file link/a', 'symlink link/to-sub', 'directory link/sub', 'file link/sub/b', 'directory link/sub/deeper'])
  })
})
