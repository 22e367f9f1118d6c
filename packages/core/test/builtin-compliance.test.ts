// Every built-in plugin passes the compliance suite of its contract, resolved by name from
// the registry exactly as a transfer resolves it.
import os from 'node:os'
import { loadPlugins } from '@escp/core'
import type { PluginSet } from '@escp/core'
import { checksumCompliance, cipherCompliance, compressorCompliance, engineCompliance } from '@escp/core/testing'

let set: Promise<PluginSet> | undefined
const plugins = () => (set ??= loadPlugins())

for (const name of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305']) {
  cipherCompliance(name, async () => (await plugins()).registry.resolve('cipher', name))
}

compressorCompliance('none', async () => (await plugins()).registry.resolve('compressor', 'none'), { compresses: false })
compressorCompliance('zstd', async () => (await plugins()).registry.resolve('compressor', 'zstd'), { compresses: true })

checksumCompliance('xxh64', async () => (await plugins()).registry.resolve('checksum', 'xxh64'), [
  { input: '', blockHex: 'ef46db3751d8e999' },
  { input: 'abc', blockHex: '44bc2cf5ad770999' },
])
checksumCompliance('sha256', async () => (await plugins()).registry.resolve('checksum', 'sha256'), [
  { input: '', blockHex: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
  { input: 'abc', blockHex: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' },
])
checksumCompliance('blake3', async () => (await plugins()).registry.resolve('checksum', 'blake3'), [
  { input: '', blockHex: 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262' },
  { input: 'abc', blockHex: '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85' },
])

engineCompliance('node-fs', async () => (await plugins()).registry.resolve('engine', 'node-fs'), { stores: true, tmpDir: os.tmpdir() })
engineCompliance('dummy', async () => (await plugins()).registry.resolve('engine', 'dummy'), { stores: false })
