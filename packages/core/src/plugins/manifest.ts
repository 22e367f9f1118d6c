// What a plugin package declares about itself, checked when it is loaded (as fastify checks
// its plugins' metadata): its name, the plugin API range it was written for, what it provides.
import type { DependencyContainer, InjectionToken } from 'tsyringe'
// The two functions used, not the package's index, which loads all of semver (some 8 ms per thread).
import satisfies from 'semver/functions/satisfies'
import validRange from 'semver/ranges/valid'
import { escpError } from '../errors'
import type { Checksum } from '../contracts/checksum'
import type { Cipher } from '../contracts/cipher'
import type { Compressor } from '../contracts/compressor'
import type { IoEngine } from '../contracts/io-engine'
import { CHECKSUM } from '../contracts/checksum'
import { CIPHER } from '../contracts/cipher'
import { COMPRESSOR } from '../contracts/compressor'
import { IO_ENGINE } from '../contracts/io-engine'

/** The plugin API this build of @escp/core provides; plugins declare a semver range of it. */
export const ESCP_PLUGIN_API_VERSION = '1.0.0'

/** Every kind of plugin, with the contract its instances implement. */
export interface PluginKinds {
  cipher: Cipher
  compressor: Compressor
  checksum: Checksum
  engine: IoEngine
}
export type PluginKind = keyof PluginKinds

export const PLUGIN_KINDS: readonly PluginKind[] = ['engine', 'cipher', 'compressor', 'checksum']

export const KIND_TOKENS: { readonly [K in PluginKind]: InjectionToken<PluginKinds[K]> } = {
  cipher: CIPHER,
  compressor: COMPRESSOR,
  checksum: CHECKSUM,
  engine: IO_ENGINE,
}

export interface PluginManifest {
  name: string
  /** semver range of ESCP_PLUGIN_API_VERSION the plugin works with, e.g. '^1.0.0'. */
  escpApi: string
  provides: { [K in PluginKind]?: readonly string[] }
}

/**
 * Options every plugin's register() receives. They must survive structured cloning, because
 * worker threads rebuild their plugins from the same options.
 */
export type PluginOptions = Readonly<Record<string, unknown>>

/** The plugin options of a set, as its container holds them: a plugin's classes may inject them. */
export const PLUGIN_OPTIONS: InjectionToken<PluginOptions> = Symbol.for('escp:plugin-options')

/** What a plugin module exports. */
export interface EscpPlugin {
  manifest: PluginManifest
  register(container: DependencyContainer, options: PluginOptions): void | Promise<void>
}

/** Checks a loaded module's exports and returns it as a plugin, or throws ESCP_ERR_PLUGIN_*. */
export function checkPlugin(specifier: string, moduleExports: unknown): EscpPlugin {
  const mod = pickPluginExports(moduleExports)
  if (!mod) throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, "it exports no 'manifest' and 'register'")
  const m = mod.manifest as Partial<PluginManifest> | undefined
  if (typeof mod.register !== 'function') {
    throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, "'register' is not a function")
  }
  if (!m || typeof m !== 'object') throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, "'manifest' is missing")
  if (typeof m.name !== 'string' || m.name.length === 0) {
    throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, "'manifest.name' must be a non-empty string")
  }
  if (typeof m.escpApi !== 'string' || validRange(m.escpApi) === null) {
    throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, `'manifest.escpApi' must be a semver range, got ${JSON.stringify(m.escpApi)}`)
  }
  if (!satisfies(ESCP_PLUGIN_API_VERSION, m.escpApi)) {
    throw escpError('ESCP_ERR_PLUGIN_API_MISMATCH', m.name, m.escpApi, ESCP_PLUGIN_API_VERSION)
  }
  if (!m.provides || typeof m.provides !== 'object') {
    throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, "'manifest.provides' is missing")
  }
  for (const [kind, names] of Object.entries(m.provides)) {
    if (!(PLUGIN_KINDS as readonly string[]).includes(kind)) {
      throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, `'manifest.provides.${kind}' is not a kind escp knows (${PLUGIN_KINDS.join(', ')})`)
    }
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && n.length > 0)) {
      throw escpError('ESCP_ERR_PLUGIN_INVALID', specifier, `'manifest.provides.${kind}' must be a list of names`)
    }
  }
  return mod as EscpPlugin
}

// An ES module, a CommonJS module seen through import() (its exports under `default`), or
// a default export holding the plugin.
function pickPluginExports(moduleExports: unknown): { manifest?: unknown; register?: unknown } | undefined {
  const candidates = [moduleExports, (moduleExports as { default?: unknown } | undefined)?.default]
  for (const c of candidates) {
    if (c && typeof c === 'object' && 'manifest' in c && 'register' in c) return c as { manifest?: unknown; register?: unknown }
  }
  return undefined
}
