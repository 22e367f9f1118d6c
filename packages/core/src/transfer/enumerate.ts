// The sender's walk over its sources, in the order their names are sent. Sources named by the
// user are followed when they are symlinks (as scp and cp -r do); inside a tree, symlinks are
// sent as links. Special files in a tree are skipped with a warning (one named by the user is an
// error); an unreadable entry is reported by name and the walk goes on.
import fs from 'node:fs'
import path from 'node:path'
import { escpError, ioError, isEscpError } from '../errors'
import type { EscpError } from '../errors'
import { displayPath } from '../contracts/io-engine'
import type { DirectoryEntry, EngineSource, IoEngine } from '../contracts/io-engine'
import type { FileType } from '../protocol/messages'
import { HeldDescriptors, MAX_HELD, PROC_FD, joinBytes } from './paths'

export interface SourceEntry {
  /** Relative wire name: the source's base name, then the path inside it. */
  name: Buffer
  /** Its path, as shown to people. */
  absPath: Buffer
  /**
   * Where the sender reads it: `absPath`, or the same name through the directory it was found
   * in, held open (/proc/self/fd/N/name), so that a directory swapped for a symlink since the
   * walk is not read through.
   */
  readAt: Buffer
  /** The held directory `readAt` goes through, until the file is read (release it then). */
  held?: HeldDirectory
  type: FileType
  /** null: a file whose size is known only when it ends (a source an engine names, still being produced). */
  sizeBytes: number | null
  /** Space the file occupies on disk (st_blocks × 512); below `sizeBytes`, it may have holes. */
  allocatedBytes: number
  mode: number
  uid: number
  gid: number
  atimeNs: bigint
  mtimeNs: bigint
  linkTarget: Buffer
}

export interface SourceIssue {
  path: string
  error: EscpError
  /** A warning (a skipped special file) does not fail the transfer; an error does. */
  severity: 'warning' | 'error'
}

export interface EnumerateOptions {
  recursive: boolean
  onIssue: (issue: SourceIssue) => void
  /** The sender's engine: sources it names itself (IoEngine.describeSource) are not looked up on disk. */
  engine?: IoEngine
  /** Where the walk holds the directories it lists, for their files to be read through; none: read by path. */
  directories?: SourceDirectories
}

/**
 * A directory of the sources held open (O_PATH, opened without following a symlink at its
 * name): its files are read through it, and lead where the walk found them, whatever is renamed
 * or swapped for a symlink meanwhile. Counted references: the walk holds one while it lists the
 * directory, each of its files one until it is read and its reads have answered (retainFile),
 * each of its subdirectories one until it is opened through it. The last release closes it.
 */
export class HeldDirectory {
  private refs = 1

  constructor(
    /** Its /proc/self/fd name. */
    readonly at: Buffer,
    private readonly handle: fs.promises.FileHandle,
    private readonly owner: SourceDirectories,
  ) {}

  retain(): this {
    this.refs++
    return this
  }

  release(): void {
    if (--this.refs === 0) this.owner.close(this.at.toString(), this.handle)
  }

  /** A reference for a file to be read through it. */
  retainFile(): this {
    this.owner.filesWaiting++
    return this.retain()
  }

  releaseFile(): void {
    this.owner.filesWaiting--
    this.release()
    if (this.owner.filesWaiting === 0) this.owner.wakeAll()
  }
}

/**
 * The sender's held directories. MAX_HELD at most while files wait to be read through them:
 * past it, the walk waits for files to be read (`onStall` asks for them to be), so that every
 * file is read through a held directory, never by a path that a symlink could redirect. Held
 * only for the walk's way down (directories whose subdirectories are still to be opened), they
 * may go past it, as deep as the tree. Only without /proc, or out of descriptors with no file
 * waiting, is a directory read by its path, each name checked once. The paths they give are
 * written back as the paths they stand for in what is shown (shown()).
 */
export class SourceDirectories {
  private readonly held = new HeldDescriptors()
  /** Files that hold a directory until they are read. */
  filesWaiting = 0
  private waiting: Array<() => void> = []
  private stopped = false

  constructor(private readonly onStall: () => void = () => {}) {}

  /**
   * `dir` held, opened at `at` (its name through its parent's held one, or its path) without
   * following a symlink there; undefined when none can be held. A symlink or other file put at
   * its name since it was listed is an error (ELOOP or ENOTDIR).
   */
  async open(at: Buffer, dir: Buffer): Promise<HeldDirectory | undefined> {
    if (!PROC_FD) return undefined
    for (;;) {
      if (this.stopped) return undefined
      if (this.held.size < MAX_HELD || this.filesWaiting === 0) {
        try {
          const { name, handle } = await this.held.open(at, fs.constants.O_NOFOLLOW, displayPath(dir))
          return new HeldDirectory(Buffer.from(name), handle, this)
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code !== 'EMFILE' && code !== 'ENFILE') throw err
          if (this.filesWaiting === 0) return undefined
        }
      }
      // Files wait to be read through the directories held: once some are, one closes.
      const woken = new Promise<void>((resolve) => this.waiting.push(resolve))
      this.onStall()
      await woken
    }
  }

  /** `err` with the held directories' /proc/self/fd paths written as the paths they stand for. */
  shownError(err: EscpError): EscpError {
    return this.held.shownError(err)
  }

  close(name: string, handle: fs.promises.FileHandle): void {
    void this.held.close(name, handle).finally(() => this.wakeAll())
  }

  wakeAll(): void {
    for (const wake of this.waiting.splice(0)) wake()
  }

  /** The session failed: a walk waiting for files to be read goes on (its caller stops it). */
  stop(): void {
    this.stopped = true
    this.wakeAll()
  }

  /** Closes every directory still held (the session ends, or fails). */
  async closeAll(): Promise<void> {
    this.stop()
    await this.held.closeAll()
  }
}

/** What lstat (or stat, for a source named by the user) tells of `name`, as a listing gives it. */
export function factsOf(name: Buffer, st: fs.BigIntStats): DirectoryEntry {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other'
  return {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    sizeBytes: Number(st.size),
    allocatedBytes: Number(st.blocks) * 512,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
  }
}

function entryOf(name: Buffer, absPath: Buffer, e: DirectoryEntry, type: FileType, readAt = absPath, held?: HeldDirectory): SourceEntry {
  return {
    name,
    absPath,
    readAt,
    ...(held ? { held } : {}),
    type,
    sizeBytes: type === 'file' ? e.sizeBytes : 0,
    allocatedBytes: type === 'file' ? e.allocatedBytes : 0,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    atimeNs: e.atimeNs,
    mtimeNs: e.mtimeNs,
    linkTarget: e.linkTarget ?? Buffer.alloc(0),
  }
}

// Owned by whoever runs the sender, as a file it had written would be.
function engineEntry(own: EngineSource, source: string): SourceEntry {
  return {
    name: Buffer.from(own.name),
    absPath: Buffer.from(source),
    readAt: Buffer.from(source),
    type: 'file',
    sizeBytes: own.sizeBytes,
    // Nothing to probe for holes.
    allocatedBytes: own.sizeBytes ?? 0,
    mode: own.mode & 0o7777,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    atimeNs: own.mtimeNs,
    mtimeNs: own.mtimeNs,
    linkTarget: Buffer.alloc(0),
  }
}


export async function* enumerateSources(sources: readonly string[], options: EnumerateOptions): AsyncGenerator<SourceEntry> {
  for (const source of sources) {
    const trimmed = source.length > 1 ? source.replace(/\/+$/, '') : source
    // `.`, `..` or `dir/.` go by the name of the directory they are (`escp -r . ../x`); `/` has none.
    const named = path.basename(trimmed)
    const base = named === '.' || named === '..' ? path.basename(path.resolve(trimmed)) : named
    if (base === '') {
      options.onIssue({ path: source, severity: 'error', error: escpError('ESCP_ERR_SOURCE', source, "the root directory has no name to copy it under; name what is in it (a directory's own name, or its entries)") })
      continue
    }
    let own: EngineSource | null = null
    try {
      own = options.engine?.describeSource ? await options.engine.describeSource(source) : null
    } catch (err) {
      options.onIssue({ path: source, severity: 'error', error: isEscpError(err) ? err : escpError('ESCP_ERR_SOURCE', source, String(err)) })
      continue
    }
    if (own) {
      yield engineEntry(own, source)
      continue
    }
    let st: fs.BigIntStats
    try {
      st = await fs.promises.stat(trimmed, { bigint: true })
    } catch (err) {
      options.onIssue({ path: source, severity: 'error', error: ioError(err, 'stat', source) })
      continue
    }
    // Named through a symlink, it is read at its real path: engines read with O_NOFOLLOW, so that
    // a symlink planted at a listed name since the walk is never read through.
    let abs = Buffer.from(trimmed)
    try {
      if ((await fs.promises.lstat(trimmed)).isSymbolicLink()) abs = Buffer.from(await fs.promises.realpath(trimmed))
    } catch (err) {
      options.onIssue({ path: source, severity: 'error', error: ioError(err, 'realpath', source) })
      continue
    }
    const facts = factsOf(Buffer.from(base), st)
    if (facts.type === 'file') {
      yield entryOf(facts.name, abs, facts, 'file')
    } else if (facts.type === 'directory') {
      if (!options.recursive) {
        options.onIssue({ path: source, severity: 'error', error: escpError('ESCP_ERR_SOURCE', source, 'it is a directory (use -r)') })
        continue
      }
      yield* walk(facts.name, abs, facts, options)
    } else {
      // Named on its own, as scp has it: an error (a special file found in a tree is skipped with a warning).
      options.onIssue({ path: source, severity: 'error', error: escpError('ESCP_ERR_SOURCE', source, 'it is not a regular file, directory or symlink (a fifo, socket or device)') })
    }
  }
}

/**
 * Entries of a directory are looked up this many at a time: the thread pool then takes them one
 * after another and their completions come back together, where one at a time would wake a pool
 * thread and then the main thread for each (some 20 µs of CPU per entry on a 2-core VM).
 */
const LSTAT_WINDOW = 64

/** lstat of each path, in order; a failure is that path's Error. */
function lstatAll(paths: Buffer[]): Promise<Array<fs.BigIntStats | Error>> {
  return Promise.all(
    paths.map(
      (p) => new Promise<fs.BigIntStats | Error>((resolve) => fs.lstat(p, { bigint: true }, (err, st) => resolve(err ?? st))),
    ),
  )
}

/**
 * A directory's entries in byte order of their names, in windows: all at once from the engine's
 * listDirectory where it has one (one call per directory), else from readdir and lstat. Below
 * the source itself, the engine refuses a directory that a symlink has replaced since its
 * parent was listed, rather than follow it (`found`).
 */
async function* listEntries(dir: Buffer, engine: IoEngine | undefined, found: boolean): AsyncGenerator<Iterable<DirectoryEntry>> {
  if (engine?.listDirectory) {
    yield await engine.listDirectory(dir, { noFollow: found })
    return
  }
  const names = (await fs.promises.readdir(dir, { encoding: 'buffer' })).sort(Buffer.compare)
  for (let first = 0; first < names.length; first += LSTAT_WINDOW) {
    const window = names.slice(first, first + LSTAT_WINDOW)
    const paths = window.map((name) => joinBytes(dir, name))
    const stats = await lstatAll(paths)
    yield await Promise.all(
      window.map(async (name, i): Promise<DirectoryEntry> => {
        const st = stats[i]
        if (st instanceof Error) return { name, type: 'other', mode: 0, uid: 0, gid: 0, sizeBytes: 0, allocatedBytes: 0, atimeNs: 0n, mtimeNs: 0n, error: st }
        const facts = factsOf(name, st)
        if (facts.type === 'symlink') {
          try {
            facts.linkTarget = await fs.promises.readlink(paths[i], { encoding: 'buffer' })
          } catch (err) {
            facts.error = err as Error
          }
        }
        return facts
      }),
    )
  }
}

async function* walk(name: Buffer, abs: Buffer, facts: DirectoryEntry, options: EnumerateOptions): AsyncGenerator<SourceEntry> {
  // Depth-first with an explicit stack: trees thousands of levels deep cost no recursion.
  // `found`: a directory found in its parent's listing, not the source itself; `parent`: the
  // held directory it was found in, to open it through.
  type Pending = { name: Buffer; abs: Buffer; facts: DirectoryEntry; found: boolean; leaf?: Buffer; parent?: HeldDirectory }
  const dirs = options.directories
  const stack: Pending[] = [{ name, abs, facts, found: false }]
  while (stack.length > 0) {
    const dir = stack.pop() as Pending
    yield entryOf(dir.name, dir.abs, dir.facts, 'directory')
    const subdirs: Pending[] = []
    let held: HeldDirectory | undefined
    try {
      if (dirs) {
        try {
          held = await dirs.open(dir.parent && dir.leaf ? joinBytes(dir.parent.at, dir.leaf) : dir.abs, dir.abs)
        } finally {
          dir.parent?.release()
        }
      }
      // Through the held descriptor, it is the directory the walk found, whatever is at its name now.
      for await (const children of listEntries(held ? held.at : dir.abs, options.engine, !held && dir.found)) {
        for (const child of children) {
          const childAbs = joinBytes(dir.abs, child.name)
          const childName = joinBytes(dir.name, child.name)
          if (child.error) {
            const e = child.error
            options.onIssue({ path: displayPath(childAbs), severity: 'error', error: isEscpError(e) ? (dirs?.shownError(e) ?? e) : ioError(e, (e as { syscall?: string }).syscall ?? 'lstat', childAbs) })
          } else if (child.type === 'directory') {
            subdirs.push({ name: childName, abs: childAbs, facts: child, found: true, leaf: child.name, parent: held?.retain() })
          } else if (child.type === 'file') {
            yield held ? entryOf(childName, childAbs, child, 'file', joinBytes(held.at, child.name), held.retainFile()) : entryOf(childName, childAbs, child, 'file')
          } else if (child.type === 'symlink') {
            yield entryOf(childName, childAbs, child, child.type)
          } else {
            options.onIssue({ path: displayPath(childAbs), severity: 'warning', error: escpError('ESCP_ERR_SOURCE', displayPath(childAbs), 'a special file (fifo, socket or device); skipped') })
          }
        }
      }
    } catch (err) {
      for (const d of subdirs) d.parent?.release()
      options.onIssue({ path: displayPath(dir.abs), severity: 'error', error: listingError(err, dir.abs, dirs) })
      continue
    } finally {
      held?.release()
    }
    // Reversed so that the stack pops them in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i])
  }
}

/** What listing `dir` failed with, as shown to people. */
function listingError(err: unknown, dir: Buffer, dirs: SourceDirectories | undefined): EscpError {
  const code = isEscpError(err) ? err.errno : (err as NodeJS.ErrnoException).code
  if (code === 'ELOOP' || code === 'ENOTDIR') return escpError('ESCP_ERR_SOURCE_CHANGED', displayPath(dir), 'it is no longer a directory (a symlink or another file took its name after its parent was listed), and escp does not read through symlinks')
  if (isEscpError(err)) return dirs?.shownError(err) ?? err
  return ioError(err, (err as { syscall?: string }).syscall ?? 'scandir', dir)
}
