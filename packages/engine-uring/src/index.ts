// @escp/engine-uring: the 'uring' I/O engine, a plugin registered exactly as a third-party
// engine would be.
import { ESCP_PLUGIN_API_VERSION, IO_ENGINE, escpError } from '@escp/core/plugin'
import type { PluginManifest, PluginOptions } from '@escp/core/plugin'
import type { DependencyContainer } from 'tsyringe'
import { uncachedWritesOption } from '@escp/engine-posix'
import { UringEngine } from './uring-engine'

export const manifest: PluginManifest = {
  name: '@escp/engine-uring',
  escpApi: `^${ESCP_PLUGIN_API_VERSION}`,
  provides: { engine: ['uring'] },
}

/**
 * Plugin options `uringQueueDepth`: entries of each thread's ring (default 64); `uncachedWrites`
 * (boolean, default true), as for posix.
 */
export function register(container: DependencyContainer, options: PluginOptions = {}): void {
  const queueDepth = options.uringQueueDepth
  if (queueDepth !== undefined && typeof queueDepth !== 'number') {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `the plugin option uringQueueDepth must be a number, not ${JSON.stringify(queueDepth)}`)
  }
  container.registerInstance(IO_ENGINE, new UringEngine({ queueDepth, uncachedWrites: uncachedWritesOption(options) }))
}

export { UringEngine, DEFAULT_QUEUE_DEPTH, MAX_QUEUE_DEPTH, URING_DISABLE_ENV } from './uring-engine'
export type { UringEngineOptions } from './uring-engine'
export type { UringStats } from './binding'
