// A copy to or from a remote host starts ssh, and with it the remote `escp server`, from the
// entry point, before oclif loads: ssh's connection (some 0.27 s here, most of a small copy's
// time) then overlaps the command's own start-up instead of following it. The command line is
// read here only as far as it can be read exactly: the flags that shape ssh's command line (the
// block size among them: a push's stream count depends on it) and those that do not touch it,
// each in the one form normalizeArgv leaves; anything else, a config
// file with settings, or a plan that is not one push or pull, and the copy starts ssh itself.
// The copy takes the early ssh only for the very same command line (spawnServer). Everything
// here comes from escp's light entry (@escp/core/loopback), which the entry point has loaded
// already: ssh starts before the rest of escp loads, too.
import fs from 'node:fs'
import { discardPrestartedRemoteServer, prestartRemoteServer } from '@escp/core/loopback'
import { configFiles } from './config'
import { sshTarget } from './operands'
import { planCopy, sshOptionsOf } from './plan'
import type { SshFlags } from './plan'
import { sshArgv } from './ssh'
import { parseSize } from './units'

/** Flags with a value that go into ssh's command line, by the long name the copy command gives them. */
const SSH_VALUES: Record<string, 'port' | 'identity' | 'ssh-config' | 'jump' | 'ssh-cipher' | 'ssh-option' | 'ssh' | 'escp' | 'parallel' | 'logfile'> = {
  '-P': 'port',
  '--port': 'port',
  '-i': 'identity',
  '--identity': 'identity',
  '-F': 'ssh-config',
  '--ssh-config': 'ssh-config',
  '-J': 'jump',
  '--jump': 'jump',
  '-c': 'ssh-cipher',
  '--ssh-cipher': 'ssh-cipher',
  '-o': 'ssh-option',
  '--ssh-option': 'ssh-option',
  '-S': 'ssh',
  '--ssh': 'ssh',
  '-D': 'escp',
  '--escp': 'escp',
  '-t': 'parallel',
  '--parallel': 'parallel',
  '--logfile': 'logfile',
}
/** Switches that go into ssh's command line. */
const SSH_SWITCHES: Record<string, 'agent' | 'ipv4' | 'ipv6' | 'batch'> = { '-A': 'agent', '--agent': 'agent', '--ipv4': 'ipv4', '--ipv6': 'ipv6', '-B': 'batch', '--batch': 'batch' }
/** Flags that leave ssh's command line as it is. */
const OTHER_SWITCHES = new Set(['-r', '--recursive', '-p', '--preserve', '-C', '--compress', '-q', '--quiet', '--sparse', '--nodirect', '--bits', '--nochecksum', '-s', '--sftp', '-O', '--legacy', '-T', '--no-strict-names', '-R', '--remote-to-remote'])
const OTHER_VALUES = new Set(['-l', '--limit', '--blocksize', '--ioengine', '--cipher', '--checksum', '--escp-port', '--escp-portrange', '--bind', '--verbose'])

/**
 * Starts ssh for `args` (normalized: the command first) when they are a plain push or pull that
 * it can read whole; says whether it did.
 */
export function prestartForRemoteCopy(args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  discardPrestartedRemoteServer()
  const read = args[0] === 'copy' && !hasSettings(configFiles(env)) ? flagsOf(args.slice(1)) : null
  if (!read) return false
  const ssh = sshOptionsOf(read.flags)
  let argv: string[]
  try {
    // A push's streams depend on the block size (planCopy); an invalid one, the copy reports.
    const plan = planCopy(read.operands, ssh, read.blockSizeBytes)
    if (plan.mode === 'loopback') return false
    const remote = plan.mode === 'push' ? plan.remote : plan.remotes[0]
    argv = sshArgv(sshTarget(remote), plan.ssh, remote.port)
  } catch {
    // The copy reports what is wrong with its operands.
    return false
  }
  prestartRemoteServer(ssh.program, argv)
  return true
}

/** Whether any of the config files has something in it (which may be any flag). */
function hasSettings(files: readonly string[]): boolean {
  return files.some((f) => {
    try {
      return fs.readFileSync(f, 'utf8').trim() !== ''
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ENOENT'
    }
  })
}

/**
 * The ssh flags, block size and operands of a copy's arguments, as the copy command would read
 * them; null where they cannot be read exactly.
 */
function flagsOf(args: readonly string[]): { flags: SshFlags; blockSizeBytes: number | undefined; operands: string[] } | null {
  const values = new Map<string, string>()
  const options: string[] = []
  const switches = new Set<string>()
  const operands: string[] = []
  let verbose = 0
  let blocksize: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') {
      operands.push(...args.slice(i + 1))
      break
    }
    if (!a.startsWith('-') || a === '-') {
      operands.push(a)
      continue
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    const flag = eq > 0 ? a.slice(0, eq) : a
    const takesValue = flag in SSH_VALUES || OTHER_VALUES.has(flag)
    if (!takesValue) {
      if (eq > 0) return null
      if (flag in SSH_SWITCHES) switches.add(SSH_SWITCHES[flag])
      else if (!OTHER_SWITCHES.has(flag)) return null
      continue
    }
    const value = eq > 0 ? a.slice(eq + 1) : args[++i]
    if (value === undefined) return null
    if (flag === '--verbose') verbose = Number(value)
    if (flag === '--blocksize') {
      if (blocksize !== undefined) return null
      blocksize = value
    }
    const name = SSH_VALUES[flag]
    if (name === 'ssh-option') options.push(value)
    else if (name !== undefined) {
      // Given twice, the command refuses it.
      if (values.has(name)) return null
      values.set(name, value)
    }
  }
  const port = values.has('port') ? Number(values.get('port')) : undefined
  const parallel = values.has('parallel') ? Number(values.get('parallel')) : undefined
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) return null
  if (parallel !== undefined && !(Number.isInteger(parallel) && parallel >= 1 && parallel <= 128)) return null
  let blockSizeBytes: number | undefined
  try {
    blockSizeBytes = blocksize === undefined ? undefined : parseSize(blocksize)
  } catch {
    return null
  }
  return {
    operands,
    blockSizeBytes,
    flags: {
      // The copy command's defaults.
      ssh: values.get('ssh') ?? 'ssh',
      port,
      identity: values.get('identity'),
      'ssh-config': values.get('ssh-config'),
      jump: values.get('jump'),
      agent: switches.has('agent'),
      ipv4: switches.has('ipv4'),
      ipv6: switches.has('ipv6'),
      batch: switches.has('batch'),
      'ssh-cipher': values.get('ssh-cipher'),
      'ssh-option': options,
      escp: values.get('escp') ?? 'escp',
      logfile: values.get('logfile'),
      parallel,
      verbose: Number.isInteger(verbose) ? verbose : 0,
    },
  }
}
