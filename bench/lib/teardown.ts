// What a suite sets up (a server, a mount, a temporary directory) it takes down, in reverse
// order, whether it ends normally, fails, or is interrupted with Ctrl-C.
import { killRunning } from './timed-command'

export class Teardown {
  private readonly steps: { what: string; undo: () => unknown }[] = []

  /** Registers `undo`, to run before everything registered earlier. */
  add(what: string, undo: () => unknown): void {
    this.steps.push({ what, undo })
  }

  /** Runs every step once, last first; returns what failed. */
  async run(): Promise<string[]> {
    const failed: string[] = []
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.undo()
      } catch (err) {
        failed.push(`${step.what}: ${(err as Error).message}`)
      }
    }
    return failed
  }
}

/** Runs `body` with a Teardown that runs when it settles or when SIGINT/SIGTERM arrives. */
export async function withTeardown<T>(body: (teardown: Teardown) => Promise<T>): Promise<T> {
  const teardown = new Teardown()
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the benchmark and cleaning up\n`)
    killRunning()
    void teardown.run().then((failed) => {
      for (const f of failed) process.stderr.write(`cleanup failed: ${f}\n`)
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let result: T
  try {
    result = await body(teardown)
  } catch (err) {
    killRunning()
    for (const f of await teardown.run()) process.stderr.write(`cleanup failed: ${f}\n`)
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  const failed = await teardown.run()
  if (failed.length > 0) throw new Error(`cleanup failed, so something may be left behind:\n${failed.join('\n')}`)
  return result
}
