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
import { joinBytes } from './paths'

export interface SourceEntry {
  /** Relative wire name: the source's base name, then the path inside it. */
  name: Buffer
  /** Where the sender reads it. */
  absPath: Buffer
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

function entryOf(name: Buffer, absPath: Buffer, e: DirectoryEntry, type: FileType): SourceEntry {
  return {
    name,
    absPath,
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
  // `found`: a directory found in its parent's listing, not the source itself.
  const stack: Array<{ name: Buffer; abs: Buffer; facts: DirectoryEntry; found: boolean }> = [{ name, abs, facts, found: false }]
  while (stack.length > 0) {
    const dir = stack.pop() as { name: Buffer; abs: Buffer; facts: DirectoryEntry; found: boolean }
    yield entryOf(dir.name, dir.abs, dir.facts, 'directory')
    const subdirs: Array<{ name: Buffer; abs: Buffer; facts: DirectoryEntry; found: boolean }> = []
    try {
      for await (const children of listEntries(dir.abs, options.engine, dir.found)) {
        for (const child of children) {
          const childAbs = joinBytes(dir.abs, child.name)
          const childName = joinBytes(dir.name, child.name)
          if (child.error) {
            const e = child.error
            options.onIssue({ path: displayPath(childAbs), severity: 'error', error: isEscpError(e) ? e : ioError(e, (e as { syscall?: string }).syscall ?? 'lstat', childAbs) })
          } else if (child.type === 'directory') {
            subdirs.push({ name: childName, abs: childAbs, facts: child, found: true })
          } else if (child.type === 'file' || child.type === 'symlink') {
            yield entryOf(childName, childAbs, child, child.type)
          } else {
            options.onIssue({ path: displayPath(childAbs), severity: 'warning', error: escpError('ESCP_ERR_SOURCE', displayPath(childAbs), 'a special file (fifo, socket or device); skipped') })
          }
        }
      }
    } catch (err) {
      options.onIssue({ path: displayPath(dir.abs), severity: 'error', error: isEscpError(err) ? err : ioError(err, 'scandir', dir.abs) })
      continue
    }
    // Reversed so that the stack pops them in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i])
  }
}
