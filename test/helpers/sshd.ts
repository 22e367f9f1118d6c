// A private sshd on 127.0.0.1 for end-to-end tests: its own port, host key and authorized
// client key in a temp dir, and an ssh config file that reaches it (also through -J).
import { execFileSync, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export interface PrivateSshd {
  port: number
  dir: string
  /** An ssh config file: Host 127.0.0.1 with this port, key and no host-key prompts. */
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

/** Starts sshd, or returns the reason it cannot run here. */
export async function startSshd(): Promise<PrivateSshd | string> {
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
      'ListenAddress 127.0.0.1',
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
      'Host 127.0.0.1 localhost',
      `  Port ${port}`,
      `  IdentityFile ${keyFile}`,
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking no',
      '  UserKnownHostsFile /dev/null',
      '  LogLevel ERROR',
      '  BatchMode yes',
    ].join('\n') + '\n',
  )
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', sshdConfig], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d) => (stderr += d))
  const up = await waitForPort(port, 5000)
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
