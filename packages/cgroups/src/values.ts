/** Limit values as cgroup files spell them. */

/** `'max'` or a number, as v2 files and v1 "-1"/huge values mean "no limit". */
export function formatLimit(v: number | 'max'): string {
  return v === 'max' ? 'max' : String(v)
}

/** Parses a v2 value (`max` or a number). */
export function parseV2Limit(text: string): number | 'max' {
  const t = text.trim()
  return t === 'max' ? 'max' : Number(t)
}

/** v1 memory limits read back as PAGE_COUNTER_MAX rounded to pages when unlimited. */
const V1_UNLIMITED_THRESHOLD = 2 ** 62

/** Parses a v1 value, where -1 or a value near 2^63 means no limit. */
export function parseV1Limit(text: string): number | 'max' {
  const t = text.trim()
  if (t === '-1' || t === 'max') return 'max'
  const n = Number(t)
  return n >= V1_UNLIMITED_THRESHOLD ? 'max' : n
}
