// A copy to or from a remote host starts ssh, and with it the remote `escp server`, from the
// entry point, before oclif loads: ssh's connection (some 0.27 s here, most of a small copy's
// time) then overlaps the command's own start-up instead of following it. The command line is
// read as the copy reads it (readCopyWords), where that reading is exact; anything it leaves to
// oclif, a flag that takes the copy elsewhere (NOT_PLAIN), a config file with settings, or a
// plan that is not one push or pull, and the copy starts ssh itself.
// The copy takes the early ssh only for the very same command line (spawnServer). Everything
// here comes from escp's light entry (@escp/core/loopback), which the entry point has loaded
// already: ssh starts before the rest of escp loads, too.
import fs from 'node:fs'
import { discardPrestartedRemoteServer, prestartRemoteServer } from '@escp/core/loopback'
import { configFiles } from './config'
import { readCopyWords } from './copy-flags'
import type { CopyFlagValues } from './copy-flags'
import { sshTarget } from './operands'
import { planCopy, sshOptionsOf } from './plan'
import { sshArgv } from './ssh'

/**
 * Flags after which the copy does not start ssh as read here: sources from a file, a control
 * socket in place of ssh, a license to print, or settings of this host's own.
 */
const NOT_PLAIN: readonly (keyof CopyFlagValues)[] = ['filelist', 'mgmt', 'license', 'cpumask']
/**
 * Starts ssh for `args` (normalized: the command first) when they are a plain push or pull that
 * it can read whole; says whether it did.
 */
export function prestartForRemoteCopy(args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  discardPrestartedRemoteServer()
  const read = args[0] === 'copy' && !hasSettings(configFiles(env)) ? readCopyWords(args.slice(1)) : null
  if (!read || NOT_PLAIN.some((f) => read.flags[f] !== undefined) || read.flags['plugin-option'].length > 0) return false
  const ssh = sshOptionsOf(read.flags)
  let argv: string[]
  try {
    // A push's streams depend on the block size (planCopy).
    const plan = planCopy(read.operands, ssh, read.flags.blocksize)
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
