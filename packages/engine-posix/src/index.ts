// @escp/engine-posix: the 'posix' I/O engine, a plugin registered exactly as a third-party
// engine would be.
import { ESCP_PLUGIN_API_VERSION, IO_ENGINE } from '@escp/core/plugin'
import type { PluginManifest } from '@escp/core/plugin'
import { Lifecycle } from 'tsyringe'
import type { DependencyContainer } from 'tsyringe'
import { PosixEngine } from './posix-engine'

export const manifest: PluginManifest = {
  name: '@escp/engine-posix',
  escpApi: `^${ESCP_PLUGIN_API_VERSION}`,
  provides: { engine: ['posix'] },
}

export function register(container: DependencyContainer): void {
  container.register(IO_ENGINE, { useClass: PosixEngine }, { lifecycle: Lifecycle.ContainerScoped })
}

export { PosixEngine, nativeIoError } from './posix-engine'
export { AlignedBufferPool } from './aligned-pool'
export { loadBinding } from './binding'
export type { BindingLoad, CreateWholeCall, NativeError, NativeStats, OpenResult, PosixBinding, ReadWholeCall } from './binding'
