// Names on the wire are relative, '/'-separated byte strings. The receiver trusts none of
// them: PathGuard refuses absolute names, '.', '..', empty components and NUL, and never
// walks through a symlink below the destination, so a hostile sender cannot write outside it
// (the scp CVE-2019-6111 class), in push or in pull.
import fs from 'node:fs'
import path from 'node:path'
import { escpError, ioError } from '../errors'
import type { EscpError } from '../errors'
import { descriptorShare } from './descriptors'

const SLASH = 0x2f
const DOT = 0x2e

export function joinBytes(dir: Buffer, name: Uint8Array): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), name])
}

/** Splits a wire name into components, or throws ESCP_ERR_PATH_UNSAFE. */
export function checkRelativePath(name: Uint8Array): Buffer[] {
  const b = Buffer.from(name.buffer, name.byteOffset, name.byteLength)
  // For errors only: made when one is thrown.
  const shown = () => JSON.stringify(b.toString('utf8'))
  if (b.byteLength === 0) throw escpError('ESCP_ERR_PATH_UNSAFE', shown(), 'it is empty')
  if (b.includes(0)) throw escpError('ESCP_ERR_PATH_UNSAFE', shown(), 'it contains a NUL byte')
  if (b[0] === SLASH) throw escpError('ESCP_ERR_PATH_UNSAFE', shown(), 'it is absolute')
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i <= b.byteLength; i++) {
    if (i === b.byteLength || b[i] === SLASH) {
      const part = b.subarray(start, i)
      if (part.byteLength === 0) throw escpError('ESCP_ERR_PATH_UNSAFE', shown(), 'it has an empty component')
      if (part.byteLength <= 2 && part.every((c) => c === DOT)) throw escpError('ESCP_ERR_PATH_UNSAFE', shown(), `it has a '${part.toString()}' component`)
      parts.push(part)
      start = i + 1
    }
  }
  return parts
}

/** Whether /proc/self/fd/N leads to what descriptor N holds here (Linux with /proc mounted). */
export const PROC_FD = (() => {
  try {
    return fs.statSync('/proc/self/fd').isDirectory()
  } catch {
    return false
  }
})()

const PROC_FD_PATH = /\/proc\/self\/fd\/(\d+)/g

/**
 * O_PATH (Linux; Node does not export it): a descriptor that only names the directory, which
 * needs no read permission on it (a drop box of mode 0333 is placed into as before).
 */
const O_PATH = 0o10000000
const DIRECTORY_ONLY = O_PATH | fs.constants.O_DIRECTORY

/**
 * Directories held at most (besides the root): a quarter of the process's descriptors, at most
 * 1024; past it, a directory is named by its path. A directory this session made needs none
 * while its parent is one it made too: it stays 0700 until the end, so nobody else can rename or
 * replace what is in it. The sender's walk holds as many at most, each until its files are read.
 */
export const MAX_HELD = descriptorShare(4, 1024)

/**
 * Runs `use` on a name for the directory at `dir` that leads to it and nowhere else: through a
 * descriptor opened without following a symlink at `dir`, with no read permission needed.
 */
export async function throughDirectory(dir: Buffer, use: (at: string | Buffer) => Promise<void>): Promise<void> {
  if (!PROC_FD) {
    if ((await fs.promises.lstat(dir)).isSymbolicLink()) throw Object.assign(new Error(`ELOOP: '${dir.toString()}' is a symlink`), { code: 'ELOOP' })
    return use(dir)
  }
  const h = await fs.promises.open(dir, DIRECTORY_ONLY | fs.constants.O_NOFOLLOW)
  try {
    await use(fdPath(h.fd))
  } finally {
    await h.close()
  }
}

/** The name that leads to what descriptor `fd` holds in this process. */
function fdPath(fd: number): string {
  return `/proc/self/fd/${fd}`
}

/**
 * Directories held open (O_PATH), each named by its /proc/self/fd path, with the path it stands
 * for: what the receiver's guard places names through, and the sender's walk reads them through.
 */
export class HeldDescriptors {
  private readonly held = new Map<string, { handle: fs.promises.FileHandle; real: string }>()

  get size(): number {
    return this.held.size
  }

  /** `dir` opened as a directory only (and with `flags`), held: its /proc/self/fd name. Errors are the caller's. */
  async open(dir: Buffer, flags: number, real: string): Promise<{ name: string; handle: fs.promises.FileHandle }> {
    const handle = await fs.promises.open(dir, DIRECTORY_ONLY | flags)
    const name = fdPath(handle.fd)
    this.held.set(name, { handle, real })
    return { name, handle }
  }

  /** `text` with each held /proc/self/fd path written as the path it stands for. */
  shown(text: string): string {
    return this.held.size === 0 ? text : text.replace(PROC_FD_PATH, (whole) => this.held.get(whole)?.real ?? whole)
  }

  /**
   * `err` as people read it: the paths in its message and its `path` as they are, not as
   * reached. In place, so that whoever else holds it (a report about to go out) says the same.
   */
  shownError(err: EscpError): EscpError {
    if (this.held.size === 0) return err
    err.message = this.shown(err.message)
    if (err.path) (err as { path?: string }).path = this.shown(err.path)
    return err
  }

  /** Closes `name` if it still holds `handle` (closeAll may have come first). */
  async close(name: string, handle: fs.promises.FileHandle): Promise<void> {
    if (this.held.get(name)?.handle !== handle) return
    this.held.delete(name)
    await handle.close().catch(() => {})
  }

  async closeAll(): Promise<void> {
    const all = [...this.held.values()]
    this.held.clear()
    await Promise.all(all.map((h) => h.handle.close().catch(() => {})))
  }
}

/**
 * Places received names under a destination root. Parent directories are created as needed
 * and checked: a component that is a symlink or not a directory stops the name.
 *
 * Once opened (open()), the guard holds a descriptor of the root and of the directories others
 * could move (those it found, and those it made in one it found; MAX_HELD at most), each opened
 * with O_NOFOLLOW through its parent's, and names what it places through them
 * (/proc/self/fd/N/name): a directory swapped for a symlink while the session runs still leads
 * where it was checked, never through the symlink. Without /proc, or past MAX_HELD, names are
 * paths, checked once as they are placed.
 */
export class PathGuard {
  /** Directories made or checked, by the name they were placed at: the name to place their entries through. */
  private readonly checkedDirs = new Map<string, Buffer>()
  /** Directories this guard made (not found there): nothing in them predates the session. */
  private readonly madeDirs = new Set<string>()
  /** Full paths of parents already made real directories, by their components under the root. */
  private readonly parents = new Map<string, Buffer>()
  private readonly root: Buffer
  /** The descriptors held. */
  private readonly held = new HeldDescriptors()

  constructor(root: string | Buffer) {
    this.root = Buffer.isBuffer(root) ? root : Buffer.from(root)
    this.parents.set('', this.root)
  }

  get rootPath(): Buffer {
    return this.root
  }

  /** Opens the root (as named: a symlink there is followed) so that names are placed through descriptors. */
  async open(): Promise<void> {
    if (!PROC_FD || this.held.size > 0) return
    const at = await this.hold(this.root, this.root.toString(), 0)
    if (at) this.parents.set('', at)
  }

  /** Closes the descriptors it holds; the names it gave no longer lead anywhere. */
  async close(): Promise<void> {
    await this.held.closeAll()
  }

  /** `text` with each /proc/self/fd path of this guard's written as the path it stands for. */
  shown(text: string): string {
    return this.held.shown(text)
  }

  /** `err` with the paths it names written as they are, not as this guard reaches them. */
  shownError(err: EscpError): EscpError {
    return this.held.shownError(err)
  }

  /** The full path of `components` under the root, with every parent made a real directory. */
  async place(components: readonly Buffer[], shown: string): Promise<Buffer> {
    return this.placeKnown(components) ?? this.placeNew(components, shown)
  }

  /**
   * The full path of `components` at once, when its parent is one made a real directory
   * before (the files of a directory share it); undefined otherwise. Safe as place() is: a
   * directory made or checked by this guard stays in its cache only as long as the guard lives,
   * for one session, as `checkedDirs` does.
   */
  placeKnown(components: readonly Buffer[]): Buffer | undefined {
    const parent = this.parents.get(parentKey(components))
    return parent && joinBytes(parent, components[components.length - 1])
  }

  /**
   * Places the directory `components` (made, or found a real directory), and its entries
   * through it from now on. Its name (through its parent), whether it was made now, and the
   * name of the descriptor held for it, if one is (which leads to it wherever it is moved).
   */
  async placeDirectory(components: readonly Buffer[], shown: string, mode: number): Promise<{ path: Buffer; made: boolean; held: Buffer | null }> {
    const path = await this.place(components, shown)
    const { made, at } = await this.ensureDirectory(path, shown, mode)
    this.parents.set(pathKey(components), at)
    return { path, made, held: at === path ? null : at }
  }

  private async placeNew(components: readonly Buffer[], shown: string): Promise<Buffer> {
    let dir = this.parents.get('') as Buffer
    for (const part of components.slice(0, -1)) dir = (await this.ensureDirectory(joinBytes(dir, part), shown)).at
    this.parents.set(parentKey(components), dir)
    return joinBytes(dir, components[components.length - 1])
  }

  /** Whether this guard made `dir` (as placed), so that no file in it predates the session. */
  made(dir: Buffer): boolean {
    return this.madeDirs.has(dir.toString('latin1'))
  }

  /**
   * Makes `dir` a directory of ours, or proves it already is one (not a symlink). `made`: it
   * was made now; `at`: the name to place its entries through.
   */
  private async ensureDirectory(dir: Buffer, shown: string, mode = 0o755): Promise<{ made: boolean; at: Buffer }> {
    const key = dir.toString('latin1')
    const known = this.checkedDirs.get(key)
    if (known) return { made: false, at: known }
    let made = false
    try {
      await fs.promises.mkdir(dir, { mode })
      made = true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'mkdir', this.shown(dir.toString()))
      const st = await fs.promises.lstat(dir)
      if (st.isSymbolicLink()) throw escpError('ESCP_ERR_PATH_UNSAFE', shown, `'${this.shown(dir.toString())}' is a symlink, and escp does not write through symlinks`)
      if (!st.isDirectory()) throw escpError('ESCP_ERR_PATH_UNSAFE', shown, `'${this.shown(dir.toString())}' exists and is not a directory`)
    }
    const parentMade = this.madeDirs.has(dir.subarray(0, dir.lastIndexOf(SLASH)).toString('latin1'))
    const held = this.held.size > 0 && this.held.size <= MAX_HELD && !(made && parentMade)
    const at = (held && (await this.hold(dir, shown, fs.constants.O_NOFOLLOW))) || dir
    this.checkedDirs.set(key, at)
    if (made) {
      this.madeDirs.add(key)
      this.madeDirs.add(at.toString('latin1'))
    }
    return { made, at }
  }

  // The directory at `dir`, held open: its /proc/self/fd name, or undefined when out of
  // descriptors or not allowed (the path itself serves then). A symlink put there since it was
  // checked is refused.
  private async hold(dir: Buffer, shown: string, noFollow: number): Promise<Buffer | undefined> {
    try {
      return Buffer.from((await this.held.open(dir, noFollow, this.shown(dir.toString()))).name)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EMFILE' || code === 'ENFILE' || code === 'EACCES' || code === 'EPERM') return undefined
      if (code === 'ELOOP' || code === 'ENOTDIR') throw escpError('ESCP_ERR_PATH_UNSAFE', shown, `'${this.shown(dir.toString())}' is no longer a directory, and escp does not write through symlinks`)
      throw ioError(err, 'open', this.shown(dir.toString()))
    }
  }
}

/** Components as one key ('' for none: the root). */
function pathKey(components: readonly Buffer[]): string {
  let key = ''
  for (let i = 0; i < components.length; i++) key += (i > 0 ? '/' : '') + components[i].toString('latin1')
  return key
}

/** The components of a name's parent, as one key ('' for the root). */
function parentKey(components: readonly Buffer[]): string {
  return pathKey(components.slice(0, -1))
}

/**
 * Where a session's names land, the way scp places them: into an existing directory, or, for
 * a single source, under the destination's own name.
 */
export interface Destination {
  guard: PathGuard
  /** Maps a checked wire name to the components to place under the guard's root. */
  components(parts: Buffer[]): Buffer[]
  /**
   * A new name given with a trailing slash (`escp -r dir new/`), as `dest`: only a directory may
   * be copied to it, as cp and scp have it; a file is refused.
   */
  onlyDirectory?: string
}

export async function resolveDestination(dest: string, sourceCount: number): Promise<Destination> {
  const trailingSlash = dest.endsWith('/')
  let st: fs.Stats | undefined
  try {
    st = await fs.promises.stat(dest)
  } catch (err) {
    // `file/`: a name that must be a directory, and is a file.
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw escpError('ESCP_ERR_DEST_NOT_DIR', dest, 'it is not a directory')
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'stat', dest)
  }
  if (st?.isDirectory()) {
    const guard = new PathGuard(path.resolve(dest))
    return { guard, components: (parts) => parts }
  }
  if (sourceCount > 1 || (trailingSlash && st)) {
    throw escpError('ESCP_ERR_DEST_NOT_DIR', dest, st ? 'it is not a directory' : 'it does not exist')
  }
  // One source copied to a new name: its top-level entry takes the destination's name.
  const full = path.resolve(dest)
  const parent = path.dirname(full)
  try {
    if (!(await fs.promises.stat(parent)).isDirectory()) throw escpError('ESCP_ERR_DEST_NOT_DIR', parent, 'it is not a directory')
  } catch (err) {
    if ((err as { code?: string }).code === 'ESCP_ERR_DEST_NOT_DIR') throw err
    throw ioError(err, 'stat', parent)
  }
  const base = Buffer.from(path.basename(full))
  return { guard: new PathGuard(parent), components: (parts) => [base, ...parts.slice(1)], ...(trailingSlash ? { onlyDirectory: dest } : {}) }
}
