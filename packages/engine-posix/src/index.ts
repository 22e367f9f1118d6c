// @escp/engine-posix: the 'posix' I/O engine, a plugin registered exactly as a third-party
// engine would be.
import { ESCP_PLUGIN_API_VERSION, IO_ENGINE } from '@escp/core/plugin'
import type { PluginManifest, PluginOptions } from '@escp/core/plugin'
import { instancePerContainerCachingFactory } from 'tsyringe'
import type { DependencyContainer } from 'tsyringe'
import { loadBinding } from './binding'
import { PosixEngine, uncachedWritesOption } from './posix-engine'

export const manifest: PluginManifest = {
  name: '@escp/engine-posix',
  escpApi: `^${ESCP_PLUGIN_API_VERSION}`,
  provides: { engine: ['posix'] },
}

/** Plugin option `uncachedWrites` (boolean, default true): see PosixEngineOptions. */
export function register(container: DependencyContainer, options: PluginOptions = {}): void {
  const uncachedWrites = uncachedWritesOption(options)
  container.register(IO_ENGINE, { useFactory: instancePerContainerCachingFactory(() => new PosixEngine(loadBinding(), { uncachedWrites })) })
}

export { PosixEngine, nativeIoError, uncachedWritesOption } from './posix-engine'
export type { PosixEngineOptions } from './posix-engine'
export { AlignedBufferPool } from './aligned-pool'
export { loadBinding } from './binding'
export type { BindingLoad, CreateWholeCall, NativeError, NativeStats, OpenResult, PosixBinding, ReadWholeCall } from './binding'
