// Indexes every registered plugin instance by kind and name, answers "which exist and can they
// run here", and resolves a name to an instance with errors that list the alternatives.
import { inject, injectable, injectAll } from 'tsyringe'
import type { InjectionToken } from 'tsyringe'
import { escpError } from '../errors'
import type { Availability } from '../contracts/availability'
import type { Checksum } from '../contracts/checksum'
import type { Cipher } from '../contracts/cipher'
import type { Compressor } from '../contracts/compressor'
import type { IoEngine } from '../contracts/io-engine'
import { CHECKSUM } from '../contracts/checksum'
import { CIPHER } from '../contracts/cipher'
import { COMPRESSOR } from '../contracts/compressor'
import { AUTO_ENGINE, AUTO_ENGINE_PREFERENCE, IO_ENGINE } from '../contracts/io-engine'
import { PLUGIN_KINDS } from './manifest'
import type { PluginKind, PluginKinds, PluginManifest } from './manifest'

/** The manifests of the plugins a container was built from, in load order. */
export const LOADED_PLUGINS: InjectionToken<PluginManifest[]> = Symbol.for('escp:loaded-plugins')

/**
 * For each kind, the name of the plugin that made each registration under the kind's token, in
 * registration order, which is the order resolveAll returns the instances in. The loader records
 * it as each plugin registers, so an entry is attributed to the plugin that registered it, never
 * to one whose manifest merely claims the name.
 */
export type RegistrationOwners = { readonly [K in PluginKind]: readonly string[] }
export const REGISTRATION_OWNERS: InjectionToken<RegistrationOwners> = Symbol.for('escp:registration-owners')

export interface PluginEntry {
  kind: PluginKind
  name: string
  /** Name of the plugin package that registered it. */
  plugin: string
  availability: Availability
}

@injectable()
export class PluginRegistry {
  private readonly byKind: { [K in PluginKind]: Map<string, PluginKinds[K]> }
  private readonly owner = new Map<string, string>()

  constructor(
    @injectAll(IO_ENGINE, { isOptional: true }) engines: IoEngine[],
    @injectAll(CIPHER, { isOptional: true }) ciphers: Cipher[],
    @injectAll(COMPRESSOR, { isOptional: true }) compressors: Compressor[],
    @injectAll(CHECKSUM, { isOptional: true }) checksums: Checksum[],
    @inject(REGISTRATION_OWNERS, { isOptional: true }) owners: RegistrationOwners | undefined,
  ) {
    const impls: { [K in PluginKind]: PluginKinds[K][] } = { engine: engines, cipher: ciphers, compressor: compressors, checksum: checksums }
    this.byKind = {
      engine: index('engine', engines),
      cipher: index('cipher', ciphers),
      compressor: index('compressor', compressors),
      checksum: index('checksum', checksums),
    }
    for (const kind of PLUGIN_KINDS) {
      impls[kind].forEach((impl, i) => {
        const plugin = owners?.[kind][i]
        if (plugin !== undefined) this.owner.set(`${kind}:${impl.name}`, plugin)
      })
    }
  }

  /** Names of every plugin of a kind, available or not. */
  names(kind: PluginKind): string[] {
    return [...this.byKind[kind].keys()]
  }

  /** Every plugin (of one kind, or all), with whether it can run here and why not. */
  list(kind?: PluginKind): PluginEntry[] {
    const kinds = kind ? [kind] : PLUGIN_KINDS
    return kinds.flatMap((k) =>
      [...this.byKind[k].entries()].map(([name, impl]) => ({
        kind: k,
        name,
        plugin: this.owner.get(`${k}:${name}`) ?? '(unknown)',
        availability: safeAvailability(impl),
      })),
    )
  }

  has(kind: PluginKind, name: string): boolean {
    return this.byKind[kind].has(name)
  }

  /** The instance of a kind by name, whether or not it is available here. */
  get<K extends PluginKind>(kind: K, name: string): PluginKinds[K] {
    const impl = this.byKind[kind].get(name) as PluginKinds[K] | undefined
    if (!impl) throw escpError('ESCP_ERR_UNKNOWN_PLUGIN', kind, name, this.names(kind))
    return impl
  }

  /**
   * The instance by name, checked to be available on this machine. The engine 'auto' is the
   * first available of AUTO_ENGINE_PREFERENCE: each side of a transfer picks its own.
   */
  resolve<K extends PluginKind>(kind: K, name: string): PluginKinds[K] {
    if (kind === 'engine' && name === AUTO_ENGINE) return this.bestEngine() as PluginKinds[K]
    const impl = this.get(kind, name)
    const a = safeAvailability(impl)
    if (!a.ok) throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', kind, name, a.reason)
    return impl
  }

  private bestEngine(): IoEngine {
    for (const name of AUTO_ENGINE_PREFERENCE) {
      const engine = this.byKind.engine.get(name)
      if (engine && safeAvailability(engine).ok) return engine
    }
    throw escpError('ESCP_ERR_PLUGIN_UNAVAILABLE', 'engine', AUTO_ENGINE, `none of ${AUTO_ENGINE_PREFERENCE.join(', ')} is available here`)
  }

  /**
   * The plugin that registered an instance, or undefined when no plugin's register() did (a
   * registration in tsyringe's global container, or a container not built by the loader).
   */
  ownerOf(kind: PluginKind, name: string): string | undefined {
    return this.owner.get(`${kind}:${name}`)
  }
}

function index<K extends PluginKind>(kind: K, impls: PluginKinds[K][]): Map<string, PluginKinds[K]> {
  const map = new Map<string, PluginKinds[K]>()
  for (const impl of impls) {
    if (map.has(impl.name)) throw escpError('ESCP_ERR_PLUGIN_DUPLICATE', kind, impl.name)
    map.set(impl.name, impl)
  }
  return map
}

// A plugin whose probe throws is unavailable, with the exception as the reason.
function safeAvailability(impl: { available(): Availability }): Availability {
  try {
    return impl.available()
  } catch (err) {
    return { ok: false, reason: `its availability check failed: ${err instanceof Error ? err.message : String(err)}` }
  }
}
