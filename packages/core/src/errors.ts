// The one catalogue of escp errors. Users, tests and the CLI match on `code`, never on the
// class: a plugin that bundles its own copy of @escp/core still produces matching errors.

const catalogue = {
  ESCP_ERR_UNKNOWN_PLUGIN: (kind: string, name: string, known: readonly string[]) =>
    `no ${kind} named '${name}'; available ${kind}s: ${known.length ? known.join(', ') : '(none)'}`,
  ESCP_ERR_PLUGIN_UNAVAILABLE: (kind: string, name: string, reason: string) =>
    `the ${kind} '${name}' cannot be used on this machine: ${reason}`,
  ESCP_ERR_PLUGIN_LOAD: (specifier: string, cause: string) =>
    `cannot load plugin '${specifier}': ${cause}`,
  ESCP_ERR_PLUGIN_INVALID: (specifier: string, problem: string) =>
    `plugin '${specifier}' is not a valid escp plugin: ${problem}`,
  ESCP_ERR_PLUGIN_API_MISMATCH: (name: string, wanted: string, have: string) =>
    `plugin '${name}' needs escp plugin API ${wanted}, but this escp provides ${have}; install a matching version of the plugin`,
  ESCP_ERR_PLUGIN_DUPLICATE: (kind: string, name: string) =>
    `two plugins provide a ${kind} named '${name}'; remove one of them`,
  ESCP_ERR_AUTH: (what: string) =>
    `authentication failed for ${what}: the data was altered, replayed or sealed with another key`,
  ESCP_ERR_BAD_ARGUMENT: (what: string) => what,
  ESCP_ERR_CORRUPT_BLOCK: (what: string) => `corrupt compressed block: ${what}`,
  ESCP_ERR_COMPRESSOR: (name: string, cause: string) =>
    `the ${name} compressor failed: ${cause}; this is a fault of the compressor or of its caller, not of the data: send without compression (the compressor 'none') and report it`,
  ESCP_ERR_IO: (syscall: string, path: string, cause: string) => `${syscall} '${path}': ${cause}`,
  ESCP_ERR_PROTOCOL: (what: string) => `protocol violation: ${what}`,
  ESCP_ERR_VERSION_MISMATCH: (ours: string, theirs: string) =>
    `incompatible escp versions: this side speaks protocol ${ours}, the peer speaks ${theirs}; install the same major version of escp on both hosts`,
  ESCP_ERR_NEGOTIATION: (what: string) => `the two sides have nothing in common: ${what}`,
  ESCP_ERR_PORT_RANGE_FULL: (address: string, first: number, last: number) =>
    `no free port on ${address} in ${first}-${last}; free one, or pick another range with --escp-port / --escp-portrange`,
  ESCP_ERR_BIND: (address: string, cause: string) => `cannot listen on ${address}: ${cause}`,
  ESCP_ERR_CONNECT: (target: string, cause: string) => `cannot open a data stream to ${target}: ${cause}`,
  ESCP_ERR_TIMEOUT: (what: string, timeoutMs: number) => `${what} did not happen within ${timeoutMs} ms`,
  ESCP_ERR_STREAM_CLOSED: (what: string) => `a data stream closed unexpectedly: ${what}`,
  ESCP_ERR_REMOTE: (code: string, message: string) => `the remote side failed: ${code}: ${message}`,
  ESCP_ERR_REMOTE_NOISE: (text: string) =>
    `the remote side printed ${JSON.stringify(text)} before escp started; a shell startup file (~/.bashrc, ~/.profile) writes to stdout there: make it print only for interactive shells`,
  ESCP_ERR_CONTROL_CLOSED: (what: string) => `the control channel closed: ${what}`,
  ESCP_ERR_CONFIG: (file: string, line: number, what: string) => `${file}:${line}: ${what}`,
  ESCP_ERR_SSH: (host: string, said: string) => `ssh to '${host}' failed: ${said}`,
  ESCP_ERR_REMOTE_NOT_FOUND: (host: string, command: string) =>
    `escp is not installed on host '${host}' (tried '${command}'); install it there or pass -D PATH`,
  ESCP_ERR_PATH_UNSAFE: (name: string, why: string) => `refused the name ${name} from the peer: ${why}`,
  ESCP_ERR_DEST_NOT_DIR: (dest: string, why: string) => `the destination '${dest}' must be a directory, but ${why}`,
  ESCP_ERR_SOURCE: (path: string, why: string) => `cannot send '${path}': ${why}`,
  ESCP_ERR_SOURCE_CHANGED: (path: string, why: string) => `'${path}' changed while it was sent: ${why}`,
  ESCP_ERR_VERIFY: (path: string, why: string) => `'${path}' failed verification: ${why}`,
  ESCP_ERR_TRANSFER: (why: string) => `the transfer failed: ${why}`,
  ESCP_ERR_FILE_TOO_LARGE: (path: string, sizeBytes: bigint | number) =>
    `'${path}' is ${sizeBytes} bytes; escp handles files up to 2^53-1 bytes`,
  ESCP_ERR_SHM: (what: string, why: string) => `shared memory ${what}: ${why}`,
  ESCP_ERR_INTERRUPTED: (by: string) => `interrupted by ${by}; files not finished were removed`,
} satisfies Record<string, (...args: never[]) => string>

export type EscpErrorCode = keyof typeof catalogue

/** Fields that explain an error further; all optional. */
export interface EscpErrorDetails {
  /** errno name of the underlying system error, e.g. 'ENOSPC'. */
  errno?: string
  /** negative errno number as Node reports it, e.g. -28. */
  errnoNumber?: number
  syscall?: string
  path?: string
  cause?: unknown
}

export class EscpError extends Error {
  readonly code: EscpErrorCode
  readonly errno?: string
  readonly errnoNumber?: number
  readonly syscall?: string
  readonly path?: string

  constructor(code: EscpErrorCode, message: string, details: EscpErrorDetails = {}) {
    super(`${code}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'EscpError'
    this.code = code
    if (details.errno !== undefined) this.errno = details.errno
    if (details.errnoNumber !== undefined) this.errnoNumber = details.errnoNumber
    if (details.syscall !== undefined) this.syscall = details.syscall
    if (details.path !== undefined) this.path = details.path
  }
}

type Args<C extends EscpErrorCode> = Parameters<(typeof catalogue)[C]>

/** Builds the error for `code` with its catalogue message. */
export function escpError<C extends EscpErrorCode>(code: C, ...args: Args<C>): EscpError {
  const format = catalogue[code] as (...a: Args<C>) => string
  return new EscpError(code, format(...args))
}

/** Like escpError, with errno/syscall/path/cause attached. */
export function escpErrorWith<C extends EscpErrorCode>(
  code: C,
  details: EscpErrorDetails,
  ...args: Args<C>
): EscpError {
  const format = catalogue[code] as (...a: Args<C>) => string
  return new EscpError(code, format(...args), details)
}

/** True when `err` carries an escp error code (optionally a given one), whichever copy of core made it. */
export function isEscpError(err: unknown, code?: EscpErrorCode): err is EscpError {
  if (typeof err !== 'object' || err === null) return false
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' && c.startsWith('ESCP_ERR_') && (code === undefined || c === code)
}

/**
 * Wraps a Node system error (fs, net) as ESCP_ERR_IO, keeping errno, syscall and path so the
 * user sees which file failed and why ("ENOSPC: no space left on device").
 */
export function ioError(err: unknown, syscall: string, path: string | Uint8Array): EscpError {
  if (typeof path !== 'string') path = Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString('utf8')
  if (isEscpError(err)) return err
  const e = err as NodeJS.ErrnoException
  const errno = typeof e?.code === 'string' ? e.code : undefined
  // Node's own message repeats the syscall and path ("ENOENT: no such file or directory, open 'x'"):
  // keep its first part, the errno and its meaning.
  const cause = e instanceof Error ? (errno && e.message.startsWith(`${errno}:`) ? e.message.split(', ')[0] : e.message) : String(err)
  return escpErrorWith(
    'ESCP_ERR_IO',
    { errno, errnoNumber: typeof e?.errno === 'number' ? e.errno : undefined, syscall: e?.syscall ?? syscall, path, cause: err },
    e?.syscall ?? syscall,
    path,
    cause,
  )
}

export const errorCodes = Object.keys(catalogue) as EscpErrorCode[]

/** An error named by a peer: kept under its own code when it is one of ours, else ESCP_ERR_REMOTE. */
export function remoteError(code: string, message: string): EscpError {
  const known = (errorCodes as string[]).includes(code)
  return known ? new EscpError(code as EscpErrorCode, message.startsWith(`${code}: `) ? message.slice(code.length + 2) : message) : escpError('ESCP_ERR_REMOTE', code, message)
}
