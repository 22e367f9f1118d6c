// escp engines: every engine, cipher, compressor and checksum escp can load here, whether it
// can run on this machine and, when not, why.
import { Command, Flags } from '@oclif/core'
import { loadPlugins, pluginsFromEnv, PLUGIN_KINDS } from '@escp/core'
import { BUNDLED_PLUGINS, bundledPluginModules } from '../bundled'

export default class Engines extends Command {
  static override summary = 'List engines, ciphers, compressors and checksums, with availability'
  static override flags = { json: Flags.boolean({ description: 'print JSON' }) }

  override async run(): Promise<void> {
    const { flags } = await this.parse(Engines)
    const { registry } = await loadPlugins({ plugins: [...pluginsFromEnv(), ...(await this.pluginModules())] })
    const entries = registry.list()
    if (flags.json) {
      this.log(JSON.stringify(entries, null, 2))
      return
    }
    for (const kind of PLUGIN_KINDS) {
      this.log(`${kind}s:`)
      for (const e of entries.filter((x) => x.kind === kind)) {
        const state = e.availability.ok ? 'available' : `unavailable: ${e.availability.reason}`
        this.log(`  ${e.name.padEnd(20)} ${e.plugin.padEnd(22)} ${state}`)
      }
    }
  }

  /** Plugins installed with `escp plugins install` that declare an escp plugin module. */
  private async pluginModules(): Promise<string[]> {
    return escpPluginModules(this.config.plugins.values())
  }
}

export { BUNDLED_PLUGINS }

/**
 * Module paths of the bundled plugins, then of installed oclif plugins whose package.json has
 * an "escp" entry.
 */
export function escpPluginModules(plugins: Iterable<{ root: string; pjson: unknown }>): string[] {
  const out: string[] = bundledPluginModules()
  for (const p of plugins) {
    const pjson = p.pjson as { escp?: { plugin?: string }; main?: string }
    if (pjson.escp) out.push(require('node:path').join(p.root, pjson.escp.plugin ?? pjson.main ?? 'index.js'))
  }
  return out
}
