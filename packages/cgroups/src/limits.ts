/**
 * Resource limits, in one shape for every mode. Each backend (v1/, v2/) maps them onto its
 * own files; conversions between the two worlds (shares ↔ weight) live here.
 */
import { z } from 'zod'
import { CgroupError } from './errors.js'

/** A byte count or `'max'` (no limit). */
export type Bytes = number | 'max'

export interface MemoryLimits {
  /** Hard limit: above it the OOM killer runs (v2 memory.max, v1 memory.limit_in_bytes). */
  max?: Bytes
  /** Throttling threshold (v2 memory.high; cgroup v2 only). */
  high?: Bytes
  /** Swap on top of `max` (v2 memory.swap.max; v1 memory.memsw.limit_in_bytes = max + swap). */
  swap?: Bytes
  /** Soft guarantee / reservation (v2 memory.low, v1 memory.soft_limit_in_bytes). */
  reservation?: Bytes
}

export interface CpuLimits {
  /** CPU time per period in µs, or `'max'` (v2 cpu.max, v1 cpu.cfs_quota_us). */
  quota?: number | 'max'
  /** Period in µs, 1000–1000000 (default 100000). */
  period?: number
  /** Relative weight 1–10000 (v2 cpu.weight); converted to shares on v1. */
  weight?: number
  /** Relative shares 2–262144 (v1 cpu.shares); converted to weight on v2. */
  shares?: number
  /** CPUs allowed, e.g. `"0-1,3"` (cpuset.cpus). */
  cpus?: string
  /** Memory nodes allowed (cpuset.mems). */
  mems?: string
}

export interface IoDeviceLimit {
  major: number
  minor: number
  readBps?: number
  writeBps?: number
  readIops?: number
  writeIops?: number
}

export interface IoLimits {
  /** Relative weight 1–10000 (v2 io.weight); converted to 10–1000 for v1 blkio weight. */
  weight?: number
  /** Per-device throttling (v2 io.max, v1 blkio.throttle.*). */
  devices?: IoDeviceLimit[]
}

/** Everything a cgroup can be limited by. Unset fields are left as they are. */
export interface Limits {
  memory?: MemoryLimits
  cpu?: CpuLimits
  pids?: { max: number | 'max' }
  io?: IoLimits
}

const bytes = z.union([z.literal('max'), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)])
const cpuList = z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'a list like "0-2,4"')
const u64 = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

const limitsSchemaSource = z.strictObject({
  memory: z
    .strictObject({ max: bytes.optional(), high: bytes.optional(), swap: bytes.optional(), reservation: bytes.optional() })
    .optional(),
  cpu: z
    .strictObject({
      quota: z.union([z.literal('max'), z.number().int().min(1000)]).optional(),
      period: z.number().int().min(1000).max(1_000_000).optional(),
      weight: z.number().int().min(1).max(10_000).optional(),
      shares: z.number().int().min(2).max(262_144).optional(),
      cpus: cpuList.optional(),
      mems: cpuList.optional(),
    })
    .refine((c) => c.weight === undefined || c.shares === undefined, 'give weight or shares, not both')
    .optional(),
  pids: z.strictObject({ max: z.union([z.literal('max'), z.number().int().min(1)]) }).optional(),
  io: z
    .strictObject({
      weight: z.number().int().min(1).max(10_000).optional(),
      devices: z
        .array(
          z.strictObject({
            major: z.number().int().min(0),
            minor: z.number().int().min(0),
            readBps: u64.optional(),
            writeBps: u64.optional(),
            readIops: u64.optional(),
            writeIops: u64.optional(),
          }),
        )
        .optional(),
    })
    .optional(),
})
// Parsed at every Cgroup.create: compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const limitsSchema = z.compile(limitsSchemaSource)

/** Validates limits; the first problem becomes an ERR_CGROUP_INVALID naming the field. */
export function parseLimits(limits: unknown): Limits {
  const r = limitsSchema.safeParse(limits ?? {})
  if (r.success) return r.data as Limits
  const issue = r.error.issues[0]!
  throw new CgroupError('ERR_CGROUP_INVALID', `invalid limit ${issue.path.map(String).join('.') || '(limits)'}: ${issue.message}`)
}

/** runc's conversion of v1 cpu.shares (2–262144) to v2 cpu.weight (1–10000). */
export function sharesToWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262142)
}

/** The inverse of {@link sharesToWeight}, rounded to the nearest share. */
export function weightToShares(weight: number): number {
  return Math.round(2 + ((weight - 1) * 262142) / 9999)
}

/** v2 io.weight (1–10000) to v1 blkio weight (10–1000), linearly. */
export function ioWeightToBlkio(weight: number): number {
  return Math.round(10 + ((weight - 1) * 990) / 9999)
}

/** v1 blkio weight (10–1000) to v2 io.weight (1–10000). */
export function blkioToIoWeight(weight: number): number {
  return Math.round(1 + ((weight - 10) * 9999) / 990)
}
