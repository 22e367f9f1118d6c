// Starting `escp server` on a remote host with the system ssh. Everything goes to ssh as an
// argv array (no local shell); the only remote command is the server's path and 'server',
// quoted for the remote shell, run by env with the number of streams to come. Paths travel
// inside the protocol, never on a command line.
// From escp's light entry: the command's early start builds ssh's command line with this module.
import type { ServerProcess } from '@escp/core/loopback'
import { BOOT_STREAMS_ENV, escpError, isEscpError, spawnServer } from '@escp/core/loopback'
import type { EscpError } from '@escp/core/loopback'

export interface SshOptions {
  program: string
  port?: number
  identity?: string
  config?: string
  jump?: string
  agent: boolean
  ipv4: boolean
  ipv6: boolean
  batch: boolean
  cipher?: string
  options: string[]
  remoteEscp: string
  /** Passed to the remote `escp server --logfile`. */
  remoteLogFile?: string
  /**
   * The data streams the session will ask for: the server starts that many stream workers as it
   * starts, before it loads oclif, so that they are ready when the session is (a one-byte push
   * through sshd on 2 cores spent 170 ms of its 830 waiting for them).
   */
  streams?: number
  verbose: number
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

export function sshArgv(target: string, o: SshOptions, port?: number): string[] {
  const a: string[] = ['-x', '-oForwardX11=no', '-oPermitLocalCommand=no', '-oClearAllForwardings=yes', '-oRequestTTY=no']
  if (o.batch || !process.stdin.isTTY) a.push('-oBatchMode=yes')
  const p = port ?? o.port
  if (p !== undefined) a.push('-p', String(p))
  if (o.identity) a.push('-i', o.identity)
  if (o.config) a.push('-F', o.config)
  if (o.jump) a.push('-J', o.jump)
  if (o.agent) a.push('-A')
  if (o.ipv4) a.push('-4')
  if (o.ipv6) a.push('-6')
  if (o.cipher) a.push('-c', o.cipher)
  for (const opt of o.options) a.push('-o', opt)
  // '--' keeps a target like '-oProxyCommand=...' from being read as an option.
  a.push('--', target, remoteCommand(o))
  return a
}

/**
 * The one remote command: escp's server, and its log file when asked for, each word quoted; with
 * the streams to come, through env(1), which takes NAME=VALUE in any login shell (csh's too).
 * An escp server that does not know the name ignores it. env would read a path with '=' in it
 * as another assignment, and one starting with '-' as its own option: such a server goes
 * without the hint.
 */
export function remoteCommand(o: SshOptions): string {
  const hint = o.streams !== undefined && !o.remoteEscp.includes('=') && !o.remoteEscp.startsWith('-') ? ['env', `${BOOT_STREAMS_ENV}=${o.streams}`] : []
  const words = [...hint, o.remoteEscp, 'server', ...(o.remoteLogFile ? ['--logfile', o.remoteLogFile] : [])]
  return words.map(shellQuote).join(' ')
}

export function startRemoteServer(target: string, o: SshOptions, port?: number): ServerProcess {
  return spawnServer(o.program, sshArgv(target, o, port))
}

/** Turns a failed start into the error that explains it, from what ssh and the shell said. */
export function explainRemoteFailure(err: unknown, host: string, o: SshOptions, stderr: string): EscpError {
  const said = stderr.trim().split('\n').filter((l) => l.trim()).slice(-2).join(' | ')
  if (/command not found|No such file or directory|not found/i.test(stderr) && /escp|server/.test(stderr)) {
    return escpError('ESCP_ERR_REMOTE_NOT_FOUND', host, `${o.remoteEscp} server`)
  }
  if (/Permission denied|Host key verification failed|Could not resolve hostname|Connection refused|Connection timed out|No route to host|ssh: /i.test(stderr)) {
    return escpError('ESCP_ERR_SSH', host, said)
  }
  if (isEscpError(err)) return err
  return escpError('ESCP_ERR_SSH', host, said || String(err))
}
