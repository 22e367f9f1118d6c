// A consumer: takes the blocks of one stream in order, straight from the region's slots, and
// prints their SHA-256 in the producer's format, so the two lines can be compared.
//
//   node_modules/.bin/tsx packages/engine-shm/examples/consumer.ts [--create] [--wait MS] REGION STREAM
//
// --create makes the region (1 MiB blocks, 16 slots) for escp to deliver into
// (ESCP_SHM_REGION=REGION escp --ioengine posix::shm ...), and removes it at the end.
// --wait: how long to wait for the stream to begin (default 60 s).
import crypto from 'node:crypto'
import { ShmRegion } from '@escp/engine-shm'

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const waitAt = args.indexOf('--wait')
  const timeoutMs = waitAt >= 0 ? Number(args.splice(waitAt, 2)[1]) : 60_000
  const createAt = args.indexOf('--create')
  if (createAt >= 0) args.splice(createAt, 1)
  if (args.length !== 2 || !Number.isInteger(timeoutMs)) {
    console.error('usage: consumer.ts [--create] [--wait MS] REGION STREAM')
    process.exit(2)
  }
  const [regionName, streamName] = args
  const region = createAt >= 0 ? await ShmRegion.create(regionName) : await ShmRegion.open(regionName)
  // Ctrl-C: the creator's close removes the region, so nothing is left in /dev/shm.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      region.close()
      process.exit(130)
    })
  }
  if (createAt >= 0) console.error(`consumer: region /dev/shm/escp-${regionName} is ready; waiting for '${streamName}'`)
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
