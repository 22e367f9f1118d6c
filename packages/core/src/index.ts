// @escp/core: the contracts escp's plugins implement, the plugin registry and loader, and
// the error catalogue.
import 'reflect-metadata'

export * from './contracts'
export * from './errors'
export { ESCP_PLUGIN_API_VERSION, KIND_TOKENS, PLUGIN_KINDS, checkPlugin } from './plugins/manifest'
export type { EscpPlugin, PluginKind, PluginKinds, PluginManifest, PluginOptions } from './plugins/manifest'
export { LOADED_PLUGINS, PluginRegistry, REGISTRATION_OWNERS } from './plugins/registry'
export type { PluginEntry, RegistrationOwners } from './plugins/registry'
export {
  BUILTIN_PLUGIN,
  PLUGINS_ENV,
  PLUGIN_OPTIONS,
  PLUGIN_OPTIONS_ENV,
  checkPluginOptions,
  loadPluginSet,
  loadPlugins,
  parsePluginOption,
  pluginOptionsFromEnv,
  pluginsFromEnv,
  resolvePluginModule,
} from './plugins/loader'
export type { LoadPluginsOptions, LoadedPlugin, PluginOptionValue, PluginSet, PluginSetSpec } from './plugins/loader'
export * as protocol from './protocol'
export * from './transfer'
