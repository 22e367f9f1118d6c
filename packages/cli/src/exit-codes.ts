// The one place where escp's error codes become process exit codes (docs/cli.md lists them).
import { isEscpError } from '@escp/core'

export const EXIT = {
  ok: 0,
  /** Some files failed; the others arrived verified. */
  partial: 1,
  /** Bad flags, operands or configuration. */
  usage: 2,
  /** ssh or the remote escp could not be started or spoke nonsense. */
  remote: 3,
  /** The two sides disagree: versions, ciphers, protocol. */
  protocol: 4,
  /** The data streams could not be opened or broke. */
  network: 5,
  /** A local I/O error stopped the whole transfer. */
  io: 6,
  /** Stopped by Ctrl-C, SIGTERM or SIGHUP; files not finished were removed. */
  interrupted: 130,
  /** Anything else: a bug; please report it. */
  internal: 70,
} as const

const BY_CODE: Record<string, number> = {
  ESCP_ERR_BAD_ARGUMENT: EXIT.usage,
  ESCP_ERR_CONFIG: EXIT.usage,
  ESCP_ERR_UNKNOWN_PLUGIN: EXIT.usage,
  ESCP_ERR_PLUGIN_UNAVAILABLE: EXIT.usage,
  ESCP_ERR_PLUGIN_LOAD: EXIT.usage,
  ESCP_ERR_PLUGIN_INVALID: EXIT.usage,
  ESCP_ERR_PLUGIN_API_MISMATCH: EXIT.usage,
  ESCP_ERR_PLUGIN_DUPLICATE: EXIT.usage,
  ESCP_ERR_DEST_NOT_DIR: EXIT.usage,
  ESCP_ERR_REMOTE_NOT_FOUND: EXIT.remote,
  ESCP_ERR_SSH: EXIT.remote,
  ESCP_ERR_REMOTE_NOISE: EXIT.remote,
  ESCP_ERR_CONTROL_CLOSED: EXIT.remote,
  ESCP_ERR_REMOTE: EXIT.remote,
  ESCP_ERR_VERSION_MISMATCH: EXIT.protocol,
  ESCP_ERR_NEGOTIATION: EXIT.protocol,
  ESCP_ERR_PROTOCOL: EXIT.protocol,
  ESCP_ERR_AUTH: EXIT.protocol,
  ESCP_ERR_PORT_RANGE_FULL: EXIT.network,
  ESCP_ERR_BIND: EXIT.network,
  ESCP_ERR_CONNECT: EXIT.network,
  ESCP_ERR_TIMEOUT: EXIT.network,
  ESCP_ERR_STREAM_CLOSED: EXIT.network,
  ESCP_ERR_IO: EXIT.io,
  ESCP_ERR_TRANSFER: EXIT.io,
  ESCP_ERR_SHM: EXIT.io,
  ESCP_ERR_INTERRUPTED: EXIT.interrupted,
}

export function exitCodeOf(err: unknown): number {
  return isEscpError(err) ? (BY_CODE[err.code] ?? EXIT.io) : EXIT.internal
}
