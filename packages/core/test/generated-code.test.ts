// The flatbuffers output is committed and checked, not trusted: regenerate it and compare.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { skipBecause } from '@escp/core/testing'

const ROOT = path.resolve(__dirname, '..', '..', '..')

function hasFlatc(): boolean {
  try {
    execFileSync('flatc', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('generated wire code', function () {
  it('matches what flatc generates from schema/escp.fbs', function () {
    if (!hasFlatc()) {
      skipBecause(this, 'flatc is not installed (apt-get install flatbuffers-compiler)')
    }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-flatc-'))
    try {
      execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'gen-proto.js'), tmp])
      const committed = fs.readFileSync(path.join(ROOT, 'packages/core/src/protocol/generated/escp_generated.ts'), 'utf8')
      const fresh = fs.readFileSync(path.join(tmp, 'escp_generated.ts'), 'utf8')
      expect(fresh === committed, 'packages/core/src/protocol/generated is stale: run npm run gen:proto and commit the result').to.equal(true)
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })
})
