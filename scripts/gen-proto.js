'use strict'
// Regenerates the TypeScript for the wire schema with flatc (Debian: flatbuffers-compiler).
// The output is committed; a test fails when it differs from what flatc makes of the schema.
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const core = path.join(__dirname, '..', 'packages', 'core')
const out = process.argv[2] ?? path.join(core, 'src', 'protocol', 'generated')
execFileSync('flatc', ['--ts', '--ts-flat-files', '-o', out, path.join(core, 'schema', 'escp.fbs')], { stdio: 'inherit' })
