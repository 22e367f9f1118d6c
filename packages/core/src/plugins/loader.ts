// Builds a DI container from a list of module specifiers. The list and the options are plain
// data, so a worker thread given the same PluginSet spec rebuilds the same plugins: DI graphs
// cannot cross threads, module specifiers can (as pino's transports do).
import { pathToFileURL } from 'node:url'
import { container as rootContainer, Lifecycle } from 'tsyringe'
import type { DependencyContainer, InjectionToken } from 'tsyringe'
import { escpError, escpErrorWith, isEscpError } from '../errors'
import { PLUGIN_OPTIONS_ENV, PLUGINS_ENV } from '../env-names'
import { pluginModules } from './modules'
export { BUILTIN_PLUGIN, pluginModules, pluginsFromEnv, resolvePluginModule } from './modules'
export { checkPluginOptions, parsePluginOption, pluginOptionsFromEnv } from './options'
export type { PluginOptionValue } from './options'
import { checkPlugin, KIND_TOKENS, PLUGIN_KINDS, PLUGIN_OPTIONS } from './manifest'
import type { EscpPlugin, PluginManifest, PluginOptions } from './manifest'
import { emptyRegistrationLog, recordingContainer } from './recording-container'
import { LOADED_PLUGINS, PluginRegistry, REGISTRATION_OWNERS } from './registry'

/** The built-in plugin, always loaded first. */
export { PLUGIN_OPTIONS_ENV, PLUGINS_ENV }

export { PLUGIN_OPTIONS }

/** The serializable recipe of a plugin set: resolved module paths and options. */
export interface PluginSetSpec {
  modules: string[]
  options: PluginOptions
}

export interface LoadedPlugin {
  manifest: PluginManifest
  /** Absolute path of the module that was loaded. */
  module: string
}

export interface PluginSet {
  container: DependencyContainer
  registry: PluginRegistry
  plugins: LoadedPlugin[]
  /** Pass this to a worker thread; loadPluginSet(spec) there rebuilds the same set. */
  spec: PluginSetSpec
}

export interface LoadPluginsOptions {
  /** Plugin modules besides the built-in one: package names, or paths (relative to `cwd`). */
  plugins?: readonly string[]
  options?: PluginOptions
  /** Where relative paths and package names are looked up first. Default: process.cwd(). */
  cwd?: string
}

/** Plugin modules named in ESCP_PLUGINS (comma-separated), or none. */
/** Loads the built-in plugin plus `plugins`, registers them all and checks their manifests. */
export async function loadPlugins(opts: LoadPluginsOptions = {}): Promise<PluginSet> {
  return loadPluginSet({ modules: pluginModules(opts.plugins, opts.cwd), options: opts.options ?? {} })
}

/** Rebuilds a plugin set from its spec (in a worker thread, or anywhere). */
export async function loadPluginSet(spec: PluginSetSpec): Promise<PluginSet> {
  const container = rootContainer.createChildContainer()
  container.registerInstance(PLUGIN_OPTIONS, spec.options)
  const plugins: LoadedPlugin[] = []
  const seen = new Map<string, string>()
  const owners = emptyRegistrationLog()
  for (const module of spec.modules) {
    const plugin = await importPlugin(module)
    const earlier = seen.get(plugin.manifest.name)
    if (earlier !== undefined) {
      throw escpError('ESCP_ERR_PLUGIN_INVALID', module, `its name '${plugin.manifest.name}' is already used by ${earlier}`)
    }
    seen.set(plugin.manifest.name, module)
    try {
      await plugin.register(recordingContainer(container, plugin.manifest.name, owners), spec.options)
    } catch (err) {
      if (isEscpError(err)) throw err
      throw escpError('ESCP_ERR_PLUGIN_LOAD', module, `register() failed: ${(err as Error)?.message ?? String(err)}`)
    }
    plugins.push({ manifest: plugin.manifest, module })
  }
  container.registerInstance(LOADED_PLUGINS, plugins.map((p) => p.manifest))
  container.registerInstance(REGISTRATION_OWNERS, owners)
  // Each kind is resolved here first, because tsyringe rewraps an exception thrown while it
  // injects the registry's constructor as a plain Error, losing the code and the plugin's name
  // that recordingContainer put on it. A ContainerScoped or value registration (what the
  // built-ins and the plugin guide use) gives the registry the same instance; a transient one
  // is constructed once more.
  for (const kind of PLUGIN_KINDS) {
    const token: InjectionToken<unknown> = KIND_TOKENS[kind]
    if (!container.isRegistered(token, true)) continue
    try {
      container.resolveAll(token)
    } catch (err) {
      if (isEscpError(err)) throw err
      // Only a registration no plugin made (in tsyringe's global container) gets here.
      throw escpErrorWith('ESCP_ERR_PLUGIN_LOAD', { cause: err }, spec.modules.join(', '), `constructing a ${kind} registered outside any plugin's register() failed: ${(err as Error)?.message ?? String(err)}`)
    }
  }
  container.register(PluginRegistry, { useClass: PluginRegistry }, { lifecycle: Lifecycle.ContainerScoped })
  let registry: PluginRegistry
  try {
    registry = container.resolve(PluginRegistry)
  } catch (err) {
    if (isEscpError(err)) throw err
    throw escpError('ESCP_ERR_PLUGIN_LOAD', spec.modules.join(', '), `a plugin's constructor failed: ${(err as Error)?.message ?? String(err)}`)
  }
  checkDeclarations(registry, plugins)
  return { container, registry, plugins, spec }
}

async function importPlugin(module: string): Promise<EscpPlugin> {
  let moduleExports: unknown
  try {
    moduleExports = await loadModule(module)
  } catch (err) {
    // require()'s message goes on with its require stack, one line each.
    throw escpError('ESCP_ERR_PLUGIN_LOAD', module, ((err as Error)?.message ?? String(err)).split('\n')[0])
  }
  return checkPlugin(module, moduleExports)
}

/**
 * A plugin module: a CommonJS one (as escp's own are) through require(), an ES module through
 * import(). import() starts Node's ES module loader in a process or thread where nothing has yet:
 * measured on 2 cores, a one-byte local copy took 30 ms more CPU and 10 ms more time with every
 * plugin loaded through it.
 */
async function loadModule(module: string): Promise<unknown> {
  if (!module.endsWith('.mjs')) {
    try {
      return require(module) as unknown
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err
    }
  }
  return import(pathToFileURL(module).href)
}

// Each manifest must list exactly the names its plugin registered, so `escp engines` can name
// the package behind every entry and a plugin can neither claim a name another registered nor
// register one it does not declare.
function checkDeclarations(registry: PluginRegistry, plugins: LoadedPlugin[]): void {
  for (const { manifest } of plugins) {
    for (const kind of PLUGIN_KINDS) {
      const declared = new Set(manifest.provides[kind] ?? [])
      for (const name of declared) {
        const owner = registry.ownerOf(kind, name)
        if (owner === manifest.name) continue
        const elsewhere = owner === undefined ? '' : ` ('${name}' was registered by plugin '${owner}')`
        throw escpError('ESCP_ERR_PLUGIN_INVALID', manifest.name, `its manifest declares the ${kind} '${name}', but it did not register one${elsewhere}`)
      }
      for (const name of registry.names(kind)) {
        if (registry.ownerOf(kind, name) === manifest.name && !declared.has(name)) {
          throw escpError('ESCP_ERR_PLUGIN_INVALID', manifest.name, `it registered a ${kind} named '${name}' that its manifest does not declare`)
        }
      }
    }
  }
  for (const kind of PLUGIN_KINDS) {
    for (const name of registry.names(kind)) {
      if (registry.ownerOf(kind, name) === undefined) {
        throw escpError('ESCP_ERR_PLUGIN_INVALID', name, `a ${kind} named '${name}' was registered outside any plugin's register() (by @singleton() or @injectable({ token })?), so no manifest can declare it`)
      }
    }
  }
}

