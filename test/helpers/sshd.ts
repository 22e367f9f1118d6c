// A private sshd on 127.0.0.1 for end-to-end tests: its own port, host key and authorized
// client key in a temp dir, and an ssh config file that reaches it (also through -J).
// The WAN benchmark starts the same sshd inside a network namespace, on that namespace's address.
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export interface PrivateSshd {
  port: number
  dir: string
  /** An ssh config file: Host 127.0.0.1 (or the listen address) with this port, key and no host-key prompts. */
  configFile: string
  keyFile: string
  stop(): Promise<void>
}

const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => fs.existsSync(p))

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
    s.once('error', reject)
  })
}

export interface SshdOptions {
  /** Default 127.0.0.1. */
  listenAddress?: string
  /** Run sshd inside this network namespace (`ip netns exec NS sshd ...`); readiness is then its pid file. */
  netns?: string
}

/** Starts sshd, or returns the reason it cannot run here. */
export async function startSshd(options: SshdOptions = {}): Promise<PrivateSshd | string> {
  const address = options.listenAddress ?? '127.0.0.1'
  if (!SSHD) return 'sshd is not installed (apt-get install openssh-server)'
  if (process.getuid?.() !== 0) return 'the private sshd needs root here (it logs in as the current user with a key)'
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'escp-sshd-'))
  const port = await freePort()
  const hostKey = path.join(dir, 'host_ed25519')
  const keyFile = path.join(dir, 'client_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile])
  fs.copyFileSync(`${keyFile}.pub`, path.join(dir, 'authorized_keys'))
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  const sshdConfig = path.join(dir, 'sshd_config')
  fs.writeFileSync(
    sshdConfig,
    [
      `Port ${port}`,
      `ListenAddress ${address}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      // scp speaks SFTP by default since OpenSSH 9.
      ...(fs.existsSync('/usr/lib/openssh/sftp-server') ? ['Subsystem sftp /usr/lib/openssh/sftp-server'] : []),
      // PATH for the remote escp server: where node lives here.
      `SetEnv PATH=${path.dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
      'LogLevel ERROR',
    ].join('\n') + '\n',
  )
  const configFile = path.join(dir, 'ssh_config')
  fs.writeFileSync(
    configFile,
    [
      address === '127.0.0.1' ? 'Host 127.0.0.1 localhost' : `Host ${address}`,
      `  Port ${port}`,
      `  IdentityFile ${keyFile}`,
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking no',
      '  UserKnownHostsFile /dev/null',
      '  LogLevel ERROR',
      '  BatchMode yes',
    ].join('\n') + '\n',
  )
  const argv = [SSHD, '-D', '-e', '-f', sshdConfig]
  // `ip netns exec` execs the command, so the child's pid is sshd's either way.
  const child: ChildProcess = options.netns ? spawn('ip', ['netns', 'exec', options.netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d))
  const up = options.netns ? await waitForFile(path.join(dir, 'sshd.pid'), 5000, child) : await waitForPort(port, 5000)
  if (!up) {
    child.kill()
    fs.rmSync(dir, { recursive: true, force: true })
    return `sshd did not start: ${stderr.trim() || 'no output'}`
  }
  return {
    port,
    dir,
    configFile,
    keyFile,
    stop: async () => {
      child.kill()
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)))
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** sshd writes its pid file once it listens; a port in another namespace cannot be probed from here. */
async function waitForFile(file: string, timeoutMs: number, child: ChildProcess): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end && child.exitCode === null) {
    if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

async function waitForPort(port: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}
