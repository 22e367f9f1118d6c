// Plugin options as users give them: NAME=VALUE on the command line, or a JSON object in
// ESCP_PLUGIN_OPTIONS. It imports only escp's errors and environment names: the module that
// starts a loopback child before anything else loads (transfer/loopback-child.ts) reads them too.
import { escpError } from '../errors'
import { PLUGIN_OPTIONS_ENV } from '../env-names'

/** A value a plugin option may take: plain data, so that worker threads and child processes get it too. */
export type PluginOptionValue = string | number | boolean

/** Checks that `options` is a plain object of strings, numbers and booleans; `from` names where it came from. */
export function checkPluginOptions(options: unknown, from: string): Record<string, PluginOptionValue> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw escpError('ESCP_ERR_BAD_ARGUMENT', `${from}: plugin options must be an object of names and values`)
  for (const [name, value] of Object.entries(options)) {
    const plain = typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))
    if (!plain) throw escpError('ESCP_ERR_BAD_ARGUMENT', `${from}: the plugin option '${name}' must be a string, a finite number or a boolean`)
  }
  return options as Record<string, PluginOptionValue>
}

/** Plugin options from ESCP_PLUGIN_OPTIONS (a JSON object), or none. */
export function pluginOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Record<string, PluginOptionValue> {
  const text = (env[PLUGIN_OPTIONS_ENV] ?? '').trim()
  if (text === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `${PLUGIN_OPTIONS_ENV} is not JSON (${(err as Error).message})`)
  }
  return checkPluginOptions(parsed, PLUGIN_OPTIONS_ENV)
}

/**
 * One `NAME=VALUE` plugin option as the command line gives it: a plain decimal (`64`, `-1`,
 * `0.5`) is a number and true/false a boolean; anything else (`0x10`, `1e3`, ` 5`) stays a string.
 */
export function parsePluginOption(text: string): [string, PluginOptionValue] {
  const eq = text.indexOf('=')
  if (eq <= 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', `plugin option '${text}': write NAME=VALUE`)
  const name = text.slice(0, eq)
  const raw = text.slice(eq + 1)
  const value: PluginOptionValue = raw === 'true' ? true : raw === 'false' ? false : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw
  return [name, value]
}

