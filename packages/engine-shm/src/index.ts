// @escp/engine-shm: the 'shm' I/O engine, registered exactly as a third-party engine would be,
// and the shared-memory block API (ShmRegion, ShmWriter, ShmReader) over the C library in
// include/escp_shm.h.
import { ESCP_PLUGIN_API_VERSION, IO_ENGINE } from '@escp/core/plugin'
import type { PluginManifest, PluginOptions } from '@escp/core/plugin'
import type { DependencyContainer } from 'tsyringe'
import { ShmEngine } from './shm-engine'

export const manifest: PluginManifest = {
  name: '@escp/engine-shm',
  escpApi: `^${ESCP_PLUGIN_API_VERSION}`,
  provides: { engine: ['shm'] },
}

/** Plugin option `shmRegion`: the receiving side's region (else $ESCP_SHM_REGION). */
export function register(container: DependencyContainer, options: PluginOptions = {}): void {
  const region = typeof options.shmRegion === 'string' ? options.shmRegion : undefined
  container.register(IO_ENGINE, { useValue: new ShmEngine({ region }) })
}

export { ShmEngine, parseShmSource, SHM_ATTACH_ENV, SHM_REGION_ENV, SHM_SOURCE_PREFIX } from './shm-engine'
export type { ShmEngineOptions } from './shm-engine'
export { ShmRegion, ShmWriter, ShmReader, FOREVER, DEFAULT_BLOCK_BYTES, DEFAULT_SLOT_COUNT, DEFAULT_STREAM_COUNT } from './region'
export type { CreateRegionOptions, ShmBlock, ShmSlot, StreamState } from './region'
