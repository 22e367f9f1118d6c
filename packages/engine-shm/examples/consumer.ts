// A consumer: takes the blocks of one stream in order, straight from the region's slots, and
// prints their SHA-256 in the producer's format, so the two lines can be compared.
//
//   node_modules/.bin/tsx packages/engine-shm/examples/consumer.ts REGION STREAM [--wait MS]
import crypto from 'node:crypto'
import { ShmRegion } from '@escp/engine-shm'

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const waitAt = args.indexOf('--wait')
  const timeoutMs = waitAt >= 0 ? Number(args.splice(waitAt, 2)[1]) : 10_000
  if (args.length !== 2) {
    console.error('usage: consumer.ts REGION STREAM [--wait MS]')
    process.exit(2)
  }
  const [regionName, streamName] = args
  const region = await ShmRegion.open(regionName)
  try {
    const reader = await region.reader(streamName, { timeoutMs })
    const sha = crypto.createHash('sha256')
    let bytes = 0
    // Each block is hashed where it lies and released at the end of its turn.
    for await (const block of reader) {
      sha.update(block.data)
      bytes += block.data.byteLength
    }
    console.log(`sha256 ${sha.digest('hex')} bytes ${bytes}`)
  } finally {
    region.close()
  }
}

main().catch((err: Error) => {
  console.error(`consumer: ${err.message}`)
  process.exit(1)
})
