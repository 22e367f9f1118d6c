// From a copy's operands to what it is: local to local (loopback mode), local to remote (push)
// or remote to local (pull). Light on purpose (no escp transfer, no oclif): the entry point
// plans a remote copy with it before anything else loads, to start ssh at once.
import { DEFAULT_OPTIONS, escpError, streamsFor } from '@escp/core/loopback'
import { parseOperand } from './operands'
import type { Operand } from './operands'
import type { SshOptions } from './ssh'

type Remote = Extract<Operand, { kind: 'remote' }>

/** Where the server side of a copy logged with --logfile FILE logs: FILE.server on its own host. */
export function serverLogFile(logfile: string): string {
  return `${logfile}.server`
}

/** The copy command's flags that shape ssh's command line, by their long names. */
export interface SshFlags {
  ssh: string
  port?: number
  identity?: string
  'ssh-config'?: string
  jump?: string
  agent?: boolean
  ipv4?: boolean
  ipv6?: boolean
  batch?: boolean
  'ssh-cipher'?: string
  'ssh-option': string[]
  escp: string
  logfile?: string
  parallel?: number
  verbose: number
}

/**
 * ssh's options for a copy with these flags: the copy command's, and the entry point's early
 * start's, whose ssh the copy takes only for the very same command line.
 */
export function sshOptionsOf(f: SshFlags): SshOptions {
  return {
    program: f.ssh,
    port: f.port,
    identity: f.identity,
    config: f['ssh-config'],
    jump: f.jump,
    agent: f.agent === true,
    ipv4: f.ipv4 === true,
    ipv6: f.ipv6 === true,
    batch: f.batch === true,
    cipher: f['ssh-cipher'],
    options: f['ssh-option'],
    remoteEscp: f.escp,
    // The remote side logs to its own file, as EScp's FILE.server.
    ...(f.logfile ? { remoteLogFile: serverLogFile(f.logfile) } : {}),
    // Asked for, or left to planCopy, which knows what is sent.
    ...(f.parallel !== undefined ? { streams: f.parallel } : {}),
    verbose: f.verbose,
  }
}

export type CopyPlan =
  | { mode: 'loopback'; sources: string[]; destination: string }
  | { mode: 'push'; sources: string[]; remote: Remote; ssh: SshOptions }
  | { mode: 'pull'; remotes: Remote[]; destination: string; ssh: SshOptions }

/**
 * What a copy of `operands` is. A push or pull that `ssh` gives no stream count gets one: a push,
 * as many as the files it sends make blocks of `blockSizeBytes`, up to the default (streamsFor);
 * a pull, whose files only the far side sees, the default.
 */
export function planCopy(operands: readonly string[], ssh: SshOptions, blockSizeBytes: number = DEFAULT_OPTIONS.blockSizeBytes): CopyPlan {
  const parsed = operands.map(parseOperand)
  const dest = parsed[parsed.length - 1]
  const sources = parsed.slice(0, -1)
  const remoteSources = sources.filter((s): s is Remote => s.kind === 'remote')
  if (dest.kind === 'local') {
    if (remoteSources.length === 0) return { mode: 'loopback', sources: sources.map((s) => (s as { path: string }).path), destination: dest.path }
    if (remoteSources.length !== sources.length) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'mixing local and remote sources in one copy is not supported; run two copies')
    const first = remoteSources[0]
    if (remoteSources.some((r) => r.host !== first.host || r.user !== first.user || r.port !== first.port)) {
      throw escpError('ESCP_ERR_BAD_ARGUMENT', 'all remote sources of one copy must be on the same host')
    }
    return { mode: 'pull', remotes: remoteSources, destination: dest.path, ssh: { ...ssh, streams: ssh.streams ?? DEFAULT_OPTIONS.streams } }
  }
  if (remoteSources.length > 0) throw escpError('ESCP_ERR_BAD_ARGUMENT', 'copies between two remote hosts (-3) are not supported yet; copy to this host first')
  const paths = sources.map((s) => (s as { path: string }).path)
  return { mode: 'push', sources: paths, remote: dest, ssh: { ...ssh, streams: ssh.streams ?? streamsFor(paths, blockSizeBytes, DEFAULT_OPTIONS.streams) } }
}

