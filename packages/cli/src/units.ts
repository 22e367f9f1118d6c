// Human sizes and rates, as EScp reads them: a byte unit counts in 1024s (4M, 1MiB, 64k), a
// bit unit in 1000s (2Gbit, 100Mbit/s).
// From escp's light entry: the command's early start reads --blocksize with it.
import { escpError } from '@escp/core/loopback'

const POW: Record<string, number> = { '': 0, k: 1, m: 2, g: 3, t: 4 }

/** A size in bytes: 4M = 4 MiB. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim())
  if (!m) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${text}' is not a size (e.g. 1M, 256k, 4MiB)`)
  return Math.round(Number(m[1]) * 1024 ** POW[m[2].toLowerCase()])
}

/** A rate in bytes per second: 500M = 500 MiB/s, 2Gbit = 2·10^9 bit/s = 250·10^6 B/s. */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|i?b|byte)?(?:\/s|ps)?$/i.exec(text.trim())
  if (!m) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${text}' is not a rate (e.g. 500M, 2Gbit, 100Mbit/s)`)
  const bits = m[3] !== undefined && m[3].toLowerCase() === 'bit'
  const power = POW[m[2].toLowerCase()]
  const bytes = bits ? (Number(m[1]) * 1000 ** power) / 8 : Number(m[1]) * 1024 ** power
  if (!(bytes > 0)) throw escpError('ESCP_ERR_BAD_ARGUMENT', `'${text}' is not a positive rate`)
  return bytes
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

export function formatRate(bytesPerSec: number, bits: boolean): string {
  const v = bits ? bytesPerSec * 8 : bytesPerSec
  const units = bits ? ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'] : ['B/s', 'kB/s', 'MB/s', 'GB/s']
  let i = 0
  let x = v
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000
    i++
  }
  return `${x.toFixed(1)} ${units[i]}`
}
