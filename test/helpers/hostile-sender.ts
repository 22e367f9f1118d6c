// A sender that says whatever a test tells it to, for tests of what a receiver accepts: the
// real server as a child process, a real handshake and encrypted streams, then hand-made records.
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { expect } from 'chai'
import { combineDigests, protocol, sessionRequest, withDefaults } from '@escp/core'
import type { Checksum, EscpError, PluginSet, TransferOptions } from '@escp/core'

const SERVER_MAIN = path.resolve(__dirname, '../../packages/core/dist/transfer/server-main.js')

/** Rejects with a clear message instead of letting a hang run into mocha's timeout. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms (a hang)`)), ms)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

const children = new Set<ChildProcessWithoutNullStreams>()

function exitOf(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

export type EntrySpec = Pick<protocol.FileSpec, 'id'> & Partial<Omit<protocol.FileSpec, 'path'>> & { path: string | Buffer }

function fileSpec(e: EntrySpec): protocol.FileSpec {
  return {
    type: 'file',
    size: 0n,
    sizeAtEnd: false,
    mode: 0o644,
    uid: 0,
    gid: 0,
    atimeNs: 0n,
    mtimeNs: 0n,
    linkTarget: new Uint8Array(0),
    sparseBytes: 0n,
    ...e,
    path: Buffer.from(e.path),
  }
}

/**
 * A sender that says whatever a test tells it to: the real server (dist/transfer/server-main.js)
 * as a child on stdio pipes, a real handshake and real encrypted streams, then hand-made
 * FileBatch, Block, FileDone and SessionEnd records.
 */
export class HostileSender {
  readonly verdicts = new Map<bigint, protocol.Verdict>()
  /** The runs of entries answered ok (1.4), as they came. */
  readonly okRuns: protocol.OkRun[] = []
  metaError: EscpError | undefined
  metaEnded = false
  private wake: (() => void) | undefined

  private constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly channel: protocol.ControlChannel,
    readonly session: protocol.Session,
    readonly checksum: Checksum,
    readonly stderr: () => string,
  ) {
    void this.readMeta()
  }

  /**
   * Starts a server that receives into `destination`; `options` must give a free port range.
   * `protocolMinor` makes the sender speak an older 1.x; `server` gives the server's engine
   * (node-fs) and more of its environment (e.g. ESCP_PLUGINS for that engine).
   */
  static async start(set: PluginSet, destination: string, options: Partial<TransferOptions>, protocolMinor?: number, server: { engine?: string; env?: NodeJS.ProcessEnv } = {}): Promise<HostileSender> {
    const child = spawn(process.execPath, [SERVER_MAIN], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...server.env } })
    children.add(child)
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (s: string) => (stderr += s))
    const channel = new protocol.ControlChannel(child.stdout, child.stdin, { side: 'client' })
    const o = withDefaults({ streams: 2, ...options })
    const session = await protocol.startClientSession(channel, set.registry, sessionRequest(o, 'receiver', [destination], 1, server.engine ?? 'node-fs'), { serverHost: '127.0.0.1', protocolMinor })
    return new HostileSender(child, channel, session, set.registry.resolve('checksum', o.checksum), () => stderr)
  }

  announce(entries: EntrySpec[], last = true): Promise<void> {
    return this.session.meta.sendMessage(protocol.RecordType.FileBatch, protocol.encodeFileBatch({ files: entries.map(fileSpec), last }))
  }

  block(fileId: bigint, offset: number, data: Buffer, stream = 0): Promise<void> {
    return this.session.data[stream].send({ type: protocol.RecordType.Block, flags: 0, rawLength: data.byteLength, fileId, offset: BigInt(offset) }, data)
  }

  /**
   * A Bundle record (1.3): the whole contents of the files of consecutive entries from `firstId`,
   * in order. In a session of 1.4, each file's status and digest follow, as a faithful sender
   * writes them unless `trailer` gives others.
   */
  bundle(firstId: bigint, files: Buffer[], stream = 0, trailer: { statuses?: number[]; digests?: Uint8Array[] } = {}): Promise<void> {
    const parts = [...files]
    if (this.session.sharedMinor >= protocol.MINOR_BUNDLE_DIGESTS) {
      files.forEach((f, i) => parts.push(Buffer.from([trailer.statuses?.[i] ?? protocol.BUNDLE_FILE_READ]), Buffer.from(trailer.digests?.[i] ?? this.digestOf([f]))))
    }
    const data = Buffer.concat(parts)
    return this.session.data[stream].send({ type: protocol.RecordType.Bundle, flags: 0, rawLength: data.byteLength, fileId: firstId, offset: BigInt(files.length) }, data)
  }

  /** The file digest a faithful sender would report for these blocks, in order. */
  digestOf(blocks: Buffer[]): Uint8Array {
    return combineDigests(this.checksum, blocks.map((b) => this.checksum.block(b)))
  }

  done(list: protocol.FileDone[]): Promise<void> {
    return this.session.meta.sendMessage(protocol.RecordType.FileDone, protocol.encodeFileDone(list))
  }

  /** The sender's report that it could not read entry `fileId` (non-fatal): the receiver drops it. */
  unreadable(fileId: bigint, path: string): Promise<void> {
    const error = { code: 'ESCP_ERR_IO', errnoName: 'EACCES', syscall: 'open', message: `ESCP_ERR_IO: open ${path}: permission denied` }
    return this.session.meta.sendMessage(protocol.RecordType.Error, protocol.encodeErrorReport({ fileId, path: Buffer.from(path), fatal: false, error }))
  }

  sessionEnd(files: number): Promise<void> {
    return this.session.meta.sendMessage(protocol.RecordType.SessionEnd, protocol.encodeSessionEnd({ files: BigInt(files), bytes: 0n }))
  }

  /** Waits for `n` verdicts, or for the receiver to end or break the meta stream. */
  async waitVerdicts(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.verdicts.size < n && !this.metaEnded) {
      if (Date.now() > deadline) throw new Error(`${this.verdicts.size} of ${n} verdicts within ${timeoutMs} ms (a hang); receiver stderr: ${this.stderr()}`)
      await new Promise<void>((resolve) => {
        this.wake = resolve
        setTimeout(resolve, 100)
      })
    }
  }

  /** The clean end of a session: END everywhere, then the server's SessionDone. */
  async finish(): Promise<protocol.SessionDone> {
    await this.waitVerdicts(Infinity)
    if (this.metaError) throw this.metaError
    await Promise.all(this.session.data.map((d) => d.end()))
    await this.session.meta.end()
    const m = await this.channel.receive(10_000, "the server's SessionDone")
    if (m.kind !== 'done') throw new Error(`expected SessionDone, got ${JSON.stringify(m)}`)
    return m.done
  }

  /**
   * Expects the server to fail the session with ESCP_ERR_PROTOCOL matching `pattern`, then
   * closes, and expects nothing left in `destination`.
   */
  async expectFatal(destination: string, pattern: RegExp): Promise<void> {
    const fatal = await within(this.fatal(), 10_000, "the server's Fatal")
    expect(fatal.code).to.equal('ESCP_ERR_PROTOCOL')
    expect(fatal.message).to.match(pattern)
    await this.close()
    expect(fs.readdirSync(destination)).to.deep.equal([])
  }

  /** The server's Fatal, which it sends when the session fails on its side. */
  async fatal(timeoutMs = 10_000): Promise<protocol.Fatal> {
    const m = await this.channel.receive(timeoutMs, "the server's Fatal")
    if (m.kind !== 'fatal') throw new Error(`expected Fatal, got ${m.kind}`)
    return m.fatal
  }

  /** Kills the servers of every sender not closed yet (a test that failed half-way). */
  static async killAll(): Promise<void> {
    for (const child of children) child.kill('SIGKILL')
    await Promise.all([...children].map(exitOf))
    children.clear()
  }

  async close(): Promise<void> {
    for (const s of [this.session.meta, ...this.session.data]) s.destroy()
    this.channel.close()
    this.child.stdin.end()
    await within(exitOf(this.child), 10_000, 'the server exiting')
    children.delete(this.child)
  }

  private async readMeta(): Promise<void> {
    try {
      for await (const rec of this.session.meta) {
        if (rec.type !== protocol.RecordType.Verdicts) continue
        const batch = protocol.decodeVerdictBatch(rec.payload)
        for (const v of batch.verdicts) this.verdicts.set(v.id, v)
        for (const r of batch.okRuns) {
          this.okRuns.push(r)
          for (let id = r.first; id < r.first + r.count; id++) this.verdicts.set(id, { id, ok: true, digest: new Uint8Array(0) })
        }
        this.wake?.()
      }
    } catch (err) {
      this.metaError = err as EscpError
    } finally {
      this.metaEnded = true
      this.wake?.()
    }
  }
}
