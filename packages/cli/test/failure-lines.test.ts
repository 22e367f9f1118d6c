// How the command prints the failures of a copy: the entries of a failed directory that failed
// the same way count on its line.
import { expect } from 'chai'
import { escpError } from '@escp/core'
import type { TransferSummary } from '@escp/core'
import { failureLines } from '../src/run-copy'

type Failure = TransferSummary['failures'][number]
const refused = (path: string): Failure => ({ path, error: escpError('ESCP_ERR_PATH_UNSAFE', path, "'/d/ef' exists and is not a directory") })
const full = (path: string): Failure => ({ path, error: Object.assign(escpError('ESCP_ERR_IO', 'write', path, 'ENOSPC'), { errno: 'ENOSPC' }) })

describe('the failure lines of a copy', function () {
  it('puts the entries of a failed directory that failed the same way on its line, with their count', function () {
    const lines = failureLines([refused('src'), refused('src/sub'), refused('src/sub/f'), refused('src/g')])
    expect(lines.map((l) => [l.failure.path, l.inside])).to.deep.equal([['src', 3]])
  })

  it('keeps a line for each failure of another kind, for unrelated names, and for a name that only begins like a directory', function () {
    const lines = failureLines([refused('src'), full('src/big'), refused('srcfile'), full('other/x')])
    expect(lines.map((l) => [l.failure.path, l.inside])).to.deep.equal([['src', 0], ['src/big', 0], ['srcfile', 0], ['other/x', 0]])
  })

  it('keeps the line of an entry whose directory in between did not fail', function () {
    const lines = failureLines([refused('src'), refused('src/sub/f')])
    expect(lines.map((l) => [l.failure.path, l.inside])).to.deep.equal([['src', 0], ['src/sub/f', 0]])
  })

  it('counts an entry listed before its directory on the directory\'s line', function () {
    const lines = failureLines([refused('src/sub/f'), refused('src/sub')])
    expect(lines.map((l) => [l.failure.path, l.inside])).to.deep.equal([['src/sub', 1]])
  })
})
