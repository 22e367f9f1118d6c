// The WAN benchmark's own delay-and-loss forwarder (bench/wan/forwarder.c) between two network
// namespaces: the RTT that ping sees is twice the configured one-way delay, the share of UDP
// datagrams that do not arrive is the configured loss, and order is kept. Needs root and
// `ip netns`; skips with the reason otherwise, or when the forwarder cannot be built.
import { execFileSync, spawn } from 'node:child_process'
import { expect } from 'chai'
import { ADDRESS_B, buildForwarder, netnsUnavailable, startWan } from '../bench/wan/wan'
import type { Wan } from '../bench/wan/wan'
import { skipBecause } from '@escp/core/testing'

const NS_A = 'escp-wt-a'
const NS_B = 'escp-wt-b'
const DELAY_MS = 10
const PINGS = 200
const LOSS = 0.05
/**
 * Datagrams for the loss check. The count lost is binomial(n, p): with n = 30,000 and p = 5%,
 * σ = √(n·p·(1−p)) ≈ 37.7 of an expected 1,500, so ±10% (±150) is ±3.98σ and a correct
 * forwarder fails it with probability about 7·10⁻⁵. (The 99.9% interval, ±3.29σ, is printed.)
 */
const DATAGRAMS = 30_000
const UDP_PORT = 9000

interface Output {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `argv` in namespace `ns`; resolves when it exits. `onStart` gets the child (to signal it). */
function runIn(ns: string, argv: string[], onStart?: (child: ReturnType<typeof spawn>) => void): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
    onStart?.(child)
  })
}

/** Datagrams the kernel of namespace `ns` dropped because a socket's receive buffer was full. */
function udpReceiveBufferErrors(ns: string): number {
  const snmp = execFileSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' })
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Udp:'))
  const i = names.split(/\s+/).indexOf('RcvbufErrors')
  return Number(values.split(/\s+/)[i])
}

// Receiver in B: counts datagrams, notes any that arrive out of order, prints JSON on SIGTERM.
const RECEIVER = `
const s = require('dgram').createSocket({ type: 'udp4', recvBufferSize: 4 << 20 })
let received = 0, outOfOrder = 0, last = -1
s.on('message', (m) => { const n = m.readUInt32BE(0); received++; if (n < last) outOfOrder++; last = n })
s.bind(${UDP_PORT}, '${ADDRESS_B}', () => console.log('ready'))
process.on('SIGTERM', () => { console.log(JSON.stringify({ received, outOfOrder })); process.exit(0) })
`
// Sender in A: DATAGRAMS numbered datagrams, 100 every 5 ms (20,000 a second).
const SENDER = `
const s = require('dgram').createSocket('udp4')
let n = 0, done = 0
const sent = (err) => { if (err) throw err; if (++done === ${DATAGRAMS}) s.close(() => console.log(done)) }
const tick = () => {
  for (let i = 0; i < 100 && n < ${DATAGRAMS}; i++) { const b = Buffer.alloc(64); b.writeUInt32BE(n++, 0); s.send(b, ${UDP_PORT}, '${ADDRESS_B}', sent) }
  if (n < ${DATAGRAMS}) setTimeout(tick, 5)
}
tick()
`

describe('WAN forwarder (bench/wan/forwarder.c)', function () {
  this.timeout(30_000)
  let wan: Wan | null = null

  before(function () {
    const why = netnsUnavailable() ?? buildForwarder()
    if (why) {
      skipBecause(this, `${why}`)
    }
  })

  afterEach(async function () {
    await wan?.stop()
    wan = null
  })

  it(`delays each packet by the one-way delay: ping's RTT is 2 × ${DELAY_MS} ms within 10%`, async function () {
    wan = await startWan({ nsA: NS_A, nsB: NS_B, delayMs: DELAY_MS, loss: 0, emulator: 'forwarder' })
    const r = await runIn(NS_A, ['ping', '-n', '-c', String(PINGS), '-i', '0.01', '-W', '1', ADDRESS_B])
    if (r.code === null || /not found|No such file/.test(r.stderr)) {
      skipBecause(this, `ping is unavailable (apt-get install iputils-ping): ${r.stderr.trim()}`)
    }
    const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b)
    const summary = r.stdout.match(/= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/)
    const median = rtts[Math.floor(rtts.length / 2)]
    console.log(`      ${rtts.length}/${PINGS} replies; RTT min/avg/max/mdev ${summary?.slice(1).join('/')} ms, median ${median} ms (expected ${2 * DELAY_MS} ms)`)
    expect(rtts.length, r.stdout + r.stderr).to.equal(PINGS)
    // The median: on a shared 2-core machine a few late wake-ups can pull the mean; both are printed.
    expect(median).to.be.within(2 * DELAY_MS * 0.9, 2 * DELAY_MS * 1.1)
    expect(rtts[0], 'no packet may arrive before its delay').to.be.at.least(2 * DELAY_MS)
  })

  it(`drops the configured share of packets (${LOSS * 100}%, ${DATAGRAMS} UDP datagrams, within 10%) and keeps their order`, async function () {
    wan = await startWan({ nsA: NS_A, nsB: NS_B, delayMs: 1, loss: LOSS, emulator: 'forwarder' })
    const current = wan
    let receiver: ReturnType<typeof spawn> | null = null
    let ready: () => void = () => undefined
    const listening = new Promise<void>((resolve) => (ready = resolve))
    const received = runIn(NS_B, [process.execPath, '-e', RECEIVER], (child) => {
      receiver = child
      child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && ready())
    })
    await Promise.race([listening, received.then((o) => Promise.reject(new Error(`the UDP receiver exited: ${o.stderr}`)))])
    const before = await current.stats()
    const overflowBefore = udpReceiveBufferErrors(NS_B)
    const sent = await runIn(NS_A, [process.execPath, '-e', SENDER])
    expect(sent.code, sent.stderr).to.equal(0)
    expect(Number(sent.stdout.trim())).to.equal(DATAGRAMS)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const after = await current.stats()
    // A receiver starved of CPU on a loaded machine overflows its socket: losses of the host, not the link.
    const overflowed = udpReceiveBufferErrors(NS_B) - overflowBefore
    ;(receiver as ReturnType<typeof spawn> | null)?.kill('SIGTERM')
    const out = await received
    const { received: got, outOfOrder } = JSON.parse(out.stdout.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { received: number; outOfOrder: number }
    const lost = DATAGRAMS - got - overflowed
    const rate = lost / DATAGRAMS
    const sigma = Math.sqrt(DATAGRAMS * LOSS * (1 - LOSS))
    const z999 = 3.2905
    console.log(
      `      ${got}/${DATAGRAMS} arrived: loss ${(rate * 100).toFixed(3)}% (expected ${LOSS * 100}%, ${((rate / LOSS - 1) * 100).toFixed(1)}% off; ` +
        `99.9% binomial interval ${Math.round(DATAGRAMS * LOSS - z999 * sigma)}–${Math.round(DATAGRAMS * LOSS + z999 * sigma)} lost, ±10% is ${Math.round(DATAGRAMS * LOSS * 0.9)}–${Math.round(DATAGRAMS * LOSS * 1.1)}); ${outOfOrder} out of order; ${overflowed} dropped by a full receive buffer`,
    )
    expect(rate).to.be.within(LOSS * 0.9, LOSS * 1.1)
    expect(outOfOrder).to.equal(0)
    // Every loss must be the configured one: none at the forwarder's ring or the TUN device's queue.
    expect(before && after).to.not.equal(null)
    expect(after!.aToB.in - before!.aToB.in).to.be.at.least(DATAGRAMS)
    expect(after!.aToB.droppedFull - before!.aToB.droppedFull).to.equal(0)
    expect(after!.aToB.lost - before!.aToB.lost).to.equal(lost)
    expect(current.txDropped(NS_A)).to.equal(0)
  })
})
