// Operands as scp reads them: `[user@]host:path`, `[user@][v6addr]:path`,
// `scp://[user@]host[:port]/path`, or a local path. A '/' before the first ':' makes a path
// local (`./a:b`, `/tmp/x:y`), as in scp.
import { escpError } from '@escp/core/loopback'

export type Operand =
  | { kind: 'local'; path: string }
  | { kind: 'remote'; user?: string; host: string; port?: number; path: string }

const HOST = /^[A-Za-z0-9._-]+$/
const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/

export function parseOperand(arg: string): Operand {
  if (arg.length === 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'an empty operand')
  if (arg.startsWith('scp://')) return parseUri(arg)
  let rest = arg
  let user: string | undefined
  const at = arg.indexOf('@')
  const colon = arg.indexOf(':')
  const slash = arg.indexOf('/')
  if (colon < 0 || (slash >= 0 && slash < colon && !arg.includes('[')) ) return { kind: 'local', path: arg }
  if (at >= 0 && at < colon && (slash < 0 || at < slash)) {
    user = arg.slice(0, at)
    rest = arg.slice(at + 1)
  }
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']')
    if (close < 0 || rest[close + 1] !== ':') return { kind: 'local', path: arg }
    const host = rest.slice(1, close)
    if (!/^[0-9A-Fa-f:.%a-z]+$/.test(host) || !host.includes(':')) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}': '${host}' is not an IPv6 address`)
    return remote(arg, user, host, undefined, rest.slice(close + 2))
  }
  const c = rest.indexOf(':')
  const s = rest.indexOf('/')
  if (c < 0 || (s >= 0 && s < c)) return { kind: 'local', path: arg }
  return remote(arg, user, rest.slice(0, c), undefined, rest.slice(c + 1))
}

function parseUri(arg: string): Operand {
  let url: URL
  try {
    url = new URL(arg)
  } catch {
    throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}' is not a valid scp:// URI`)
  }
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = url.port ? Number(url.port) : undefined
  // scp://host/path names path relative to the home directory, like host:path.
  const path = decodeURIComponent(url.pathname.replace(/^\//, ''))
  return remote(arg, url.username ? decodeURIComponent(url.username) : undefined, host, port, path)
}

function remote(arg: string, user: string | undefined, host: string, port: number | undefined, path: string): Operand {
  if (host.length === 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}' names no host`)
  if (!host.includes(':') && !HOST.test(host)) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}': '${host}' is not a host name`)
  // A host or user starting with '-' would reach ssh as an option.
  if (host.startsWith('-')) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}': a host name cannot start with '-'`)
  if (user !== undefined && !USER.test(user)) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}': '${user}' is not a user name`)
  if (path.includes('\0')) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${arg}' contains a NUL byte`)
  return { kind: 'remote', ...(user !== undefined ? { user } : {}), host, ...(port !== undefined ? { port } : {}), path }
}

/** ssh's destination argument for a remote operand. */
export function sshTarget(op: Extract<Operand, { kind: 'remote' }>): string {
  return op.user ? `${op.user}@${op.host}` : op.host
}
