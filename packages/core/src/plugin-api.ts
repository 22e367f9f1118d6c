// @escp/core/plugin: what a plugin needs from escp, and nothing else: the contracts, the error
// catalogue and the manifest's constants. A stream worker loads every plugin of its session as
// it starts; through this entry a plugin adds none of the transfer and protocol modules that
// @escp/core's index brings (measured on 2 cores: some 9 ms of each worker's start-up).
import 'reflect-metadata'

export * from './contracts'
export * from './errors'
export { ESCP_PLUGIN_API_VERSION, KIND_TOKENS, PLUGIN_KINDS, PLUGIN_OPTIONS } from './plugins/manifest'
export type { EscpPlugin, PluginKind, PluginKinds, PluginManifest, PluginOptions } from './plugins/manifest'
