/**
 * Packs a plan's steps for the addon: one typed array per field, and every string in one
 * NUL-separated buffer. Reading objects field by field through Node-API costs ~1 µs a call and
 * a container's plan has ~45 steps (~0.7 ms of main-thread time per spawn); the packed form is
 * a handful of calls. Type errors name the step and field, as the addon's own checks do.
 */
import type { Step } from './plan.js'

/** The packed form (internal between this package's TypeScript and its addon). */
export interface PackedSteps {
  count: number
  ops: Int32Array
  /** Per step 4 byte offsets into `text`, -1 where a string is absent. */
  strings: Int32Array
  /** Per step 3 numbers (0 where absent). */
  numbers: BigInt64Array
  /** Per step an index into `blobs`, or -1. */
  blobIndex: Int32Array
  text: Buffer
  blobs: Buffer[]
}

function fail(message: string): never {
  throw new TypeError(message)
}

export function packSteps(steps: unknown): PackedSteps {
  if (!Array.isArray(steps)) fail('steps must be an array')
  const count = steps.length
  const ops = new Int32Array(count)
  const strings = new Int32Array(count * 4).fill(-1)
  const numbers = new BigInt64Array(count * 3)
  const blobIndex = new Int32Array(count).fill(-1)
  const texts: string[] = []
  const blobs: Buffer[] = []
  let offset = 0
  for (let i = 0; i < count; i++) {
    const st = steps[i] as Step
    if (typeof st !== 'object' || st === null) fail(`steps[${i}] must be an object`)
    if (typeof st.op !== 'number') fail(`steps[${i}].op must be a number`)
    if (!Number.isInteger(st.op)) fail(`steps[${i}].op must be an integer`)
    ops[i] = st.op < -1 || st.op > 0x7fffffff ? -1 : st.op
    if (st.s !== undefined) {
      if (!Array.isArray(st.s)) fail(`steps[${i}].s must be an array`)
      if (st.s.length > 4) fail(`steps[${i}].s has more than 4 strings`)
      st.s.forEach((v, k) => {
        if (v === null || v === undefined) return
        if (typeof v !== 'string') fail(`steps[${i}].s[${k}] must be a string`)
        if (v.includes('\0')) fail(`steps[${i}].s[${k}] contains a NUL byte`)
        strings[i * 4 + k] = offset
        texts.push(v)
        offset += Buffer.byteLength(v) + 1
      })
    }
    if (st.n !== undefined) {
      if (!Array.isArray(st.n)) fail(`steps[${i}].n must be an array`)
      if (st.n.length > 3) fail(`steps[${i}].n has more than 3 numbers`)
      st.n.forEach((v, k) => {
        if (typeof v === 'bigint') {
          numbers[i * 3 + k] = BigInt.asIntN(64, v) // a mask above 2^63 keeps its bits
        } else if (typeof v === 'number') {
          if (!Number.isInteger(v)) fail(`steps[${i}].n[${k}] must be an integer`)
          numbers[i * 3 + k] = BigInt(v)
        } else {
          fail(`steps[${i}].n[${k}] must be a number`)
        }
      })
    }
    if (st.blob !== undefined) {
      if (!Buffer.isBuffer(st.blob)) fail(`steps[${i}].blob must be a Buffer`)
      blobIndex[i] = blobs.length
      blobs.push(st.blob)
    }
  }
  const text = Buffer.from(texts.length > 0 ? texts.join('\0') + '\0' : '', 'utf8')
  return { count, ops, strings, numbers, blobIndex, text, blobs }
}
