// Which modules a set of plugins loads, from their specifiers: apart from the loader, so that a
// process can start its stream workers with the list before it loads the plugins itself.
import path from 'node:path'
import { escpError } from '../errors'
import { PLUGINS_ENV } from '../env-names'

export const BUILTIN_PLUGIN = '@escp/core/builtin'

export function pluginsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[PLUGINS_ENV] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
}

/** Resolves a plugin specifier to the absolute path of its entry module. */
export function resolvePluginModule(specifier: string, cwd: string = process.cwd()): string {
  const isPath = specifier.startsWith('.') || path.isAbsolute(specifier)
  try {
    return isPath
      ? require.resolve(path.resolve(cwd, specifier))
      : require.resolve(specifier, { paths: [cwd, __dirname] })
  } catch (err) {
    throw escpError('ESCP_ERR_PLUGIN_LOAD', specifier, `module not found (${(err as Error).message.split('\n')[0]})`)
  }
}

/** The entry modules loadPlugins() loads for `plugins`: the built-in one first, each once. */
export function pluginModules(plugins: readonly string[] = [], cwd: string = process.cwd()): string[] {
  return [...new Set([BUILTIN_PLUGIN, ...plugins].map((s) => resolvePluginModule(s, cwd)))]
}
