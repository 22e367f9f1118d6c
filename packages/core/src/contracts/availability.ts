/** Whether a plugin can work on this machine, and why not when it cannot. */
export type Availability = { ok: true } | { ok: false; reason: string }

export const AVAILABLE: Availability = Object.freeze({ ok: true })

export function unavailable(reason: string): Availability {
  return { ok: false, reason }
}
