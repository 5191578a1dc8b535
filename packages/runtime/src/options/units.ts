/**
 * Docker's unit syntax for limits: memory sizes (`64m`, `1g`, `512k`, plain bytes) and
 * fractional CPUs (`--cpus 1.5` → a CFS quota of 150 ms per 100 ms period).
 */

const SIZE = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i
const MULTIPLIER: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

/** `'64m'` → 67108864; numbers are bytes. Returns undefined for text that is not a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  const m = SIZE.exec(value.trim())
  if (!m) return undefined
  const bytes = Math.floor(Number(m[1]) * MULTIPLIER[m[2]!.toLowerCase()]!)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** The CFS period Docker uses for `--cpus`, in microseconds. */
export const CPU_PERIOD_US = 100_000

/** `1.5` CPUs → `{ quota: 150000, period: 100000 }` (µs), as `docker run --cpus`. */
export function cpusToQuota(cpus: number): { quota: number; period: number } {
  return { quota: Math.max(1000, Math.round(cpus * CPU_PERIOD_US)), period: CPU_PERIOD_US }
}
