// The built-in plugin: escp's own ciphers, compressors, checksums and portable engines,
// registered exactly as a third-party plugin registers its own.
import { Lifecycle } from 'tsyringe'
import type { DependencyContainer } from 'tsyringe'
import { CHECKSUM } from '../contracts/checksum'
import { CIPHER } from '../contracts/cipher'
import { COMPRESSOR } from '../contracts/compressor'
import { IO_ENGINE } from '../contracts/io-engine'
import { ESCP_PLUGIN_API_VERSION } from '../plugins/manifest'
import type { PluginManifest } from '../plugins/manifest'
import { Blake3Checksum, Sha256Checksum, Xxh64Checksum } from './checksums'
import { builtinCiphers } from './ciphers'
import { NoCompressor, ZstdCompressor } from './compressors'
import { DummyEngine } from './dummy-engine'
import { NodeFsEngine } from './node-fs-engine'

export const manifest: PluginManifest = {
  name: '@escp/core',
  escpApi: `^${ESCP_PLUGIN_API_VERSION}`,
  provides: {
    engine: ['node-fs', 'dummy'],
    cipher: ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305'],
    compressor: ['none', 'zstd'],
    checksum: ['xxh64', 'blake3', 'sha256'],
  },
}

export async function register(container: DependencyContainer): Promise<void> {
  const scoped = { lifecycle: Lifecycle.ContainerScoped }
  container.register(IO_ENGINE, { useClass: NodeFsEngine }, scoped)
  container.register(IO_ENGINE, { useClass: DummyEngine }, scoped)
  for (const cipher of builtinCiphers()) container.registerInstance(CIPHER, cipher)
  container.register(COMPRESSOR, { useClass: NoCompressor }, scoped)
  container.register(COMPRESSOR, { useClass: ZstdCompressor }, scoped)
  container.register(CHECKSUM, { useClass: Xxh64Checksum }, scoped)
  container.registerInstance(CHECKSUM, await Blake3Checksum.create())
  container.register(CHECKSUM, { useClass: Sha256Checksum }, scoped)
}

export { NodeAeadCipher, OpenSslAeadCipher, builtinCiphers } from './ciphers'
export { loadAeadBinding } from './native-aead'
export type { AeadBinding, AeadLoad, NativeAeadKey } from './native-aead'
export { NoCompressor, ZstdCompressor } from './compressors'
export { Blake3Checksum, Sha256Checksum, Xxh64Checksum } from './checksums'
export { DummyEngine } from './dummy-engine'
export { NodeFsEngine, SimpleBufferPool } from './node-fs-engine'
