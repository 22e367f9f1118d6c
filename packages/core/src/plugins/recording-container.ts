// The container a plugin's register() is given: the plugin set's own, except that it records
// which plugin made each registration of a kind, so entries are attributed by what a plugin did
// rather than by what its manifest says, and a constructor that throws is reported as its plugin's.
import type { DependencyContainer, InjectionToken } from 'tsyringe'
import { EscpError, escpErrorWith, isEscpError } from '../errors'
import { KIND_TOKENS, PLUGIN_KINDS } from './manifest'
import type { PluginKind } from './manifest'

/** Per kind, the plugin behind each registration of the kind's token, in registration order. */
export type RegistrationLog = { [K in PluginKind]: string[] }

export function emptyRegistrationLog(): RegistrationLog {
  return { engine: [], cipher: [], compressor: [], checksum: [] }
}

// Each adds exactly one registration under its first argument. They run bound to the real
// container, so the register() that registerSingleton() and registerType() call is not counted.
const REGISTERING_METHODS: ReadonlySet<PropertyKey> = new Set(['register', 'registerInstance', 'registerSingleton', 'registerType'])

/**
 * Wraps `container` for the register() of `plugin`. A registration under a kind's token is made
 * under a token of its own, and the kind's token gets a factory forwarding to it: the factory
 * runs once per registration, so an exception from that registration's constructor can name the
 * plugin and kind (resolveAll alone cannot say which registration threw). The forward keeps the
 * registration's lifecycle, since the factory resolves the own token each time. Everything else
 * passes through.
 */
export function recordingContainer(container: DependencyContainer, plugin: string, log: RegistrationLog): DependencyContainer {
  const proxy: DependencyContainer = new Proxy(container, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      if (!REGISTERING_METHODS.has(prop)) return value.bind(target)
      return (token: InjectionToken<unknown>, ...rest: unknown[]) => {
        const kind = PLUGIN_KINDS.find((k) => KIND_TOKENS[k] === token)
        if (kind === undefined) {
          const result: unknown = value.call(target, token, ...rest)
          return result === target ? proxy : result
        }
        const own = Symbol(`escp:${kind} #${log[kind].length} of ${plugin}`)
        value.call(target, own, ...rest)
        target.register(token, { useFactory: (c) => resolveAttributed(c, own, plugin, kind) })
        log[kind].push(plugin)
        // tsyringe's register methods return the container for chaining; chained calls must
        // come back here to be recorded.
        return proxy
      }
    },
  })
  return proxy
}

// Errors already attributed to a plugin, so a plugin whose constructor resolves another's
// instances does not claim the other's failure.
const attributed = new WeakSet<object>()

function resolveAttributed(c: DependencyContainer, own: symbol, plugin: string, kind: PluginKind): unknown {
  try {
    return c.resolve(own)
  } catch (err) {
    if (typeof err === 'object' && err !== null && attributed.has(err)) throw err
    const failure = constructionFailure(plugin, kind, err)
    attributed.add(failure)
    throw failure
  }
}

// Keeps the code of an escp error (the user and the CLI act on it) and adds who failed.
function constructionFailure(plugin: string, kind: PluginKind, err: unknown): EscpError {
  const message = err instanceof Error ? err.message : String(err)
  if (!isEscpError(err)) {
    return escpErrorWith('ESCP_ERR_PLUGIN_LOAD', { cause: err }, plugin, `constructing its ${kind} failed: ${message}`)
  }
  const own = message.startsWith(`${err.code}: `) ? message.slice(err.code.length + 2) : message
  return new EscpError(err.code, `plugin '${plugin}' failed to construct its ${kind}: ${own}`, {
    errno: err.errno,
    errnoNumber: err.errnoNumber,
    syscall: err.syscall,
    path: err.path,
    cause: err,
  })
}
