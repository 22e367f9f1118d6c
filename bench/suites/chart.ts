// Not a measurement: redraws bench/results/chart.svg (the README's chart) from the newest JSON
// of the transfer, wan and protocol suites. The transfer and wan suites redraw it themselves
// when they finish; this suite is for after a protocol run, or after editing bench/lib/chart.ts.
import path from 'node:path'
import { parseSuiteArgs } from '../lib/args'
import { chartPanels, writeChart } from '../lib/chart'

const SUITE = 'chart'

export const usage = '  (no options: measures nothing, redraws bench/results/chart.svg from the newest results)'

export async function run(args: readonly string[] = []): Promise<void> {
  parseSuiteArgs(SUITE, args, {})
  const panels = chartPanels()
  if (panels.length === 0) throw new Error('no transfer, wan or protocol results in bench/results/ to draw')
  const { file, sources } = writeChart()
  for (const p of panels) console.log(`${p.title}: ${path.basename(p.source)}, ${p.groups.length} group(s), ${p.groups.reduce((n, g) => n + g.bars.length, 0)} bars`)
  console.log(`wrote ${file} from ${sources.join(', ')}`)
}
