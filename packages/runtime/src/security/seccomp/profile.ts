/**
 * The seccomp profile format of Docker and Podman (`--security-opt seccomp=profile.json`), as
 * a zod schema: the OCI runtime spec's `linux.seccomp` plus Docker's `archMap`, `names` and
 * conditional `includes` / `excludes`. Users pass their own profiles in this format; errors
 * name the field (`syscalls.12.args.0.op`).
 */
import { z } from 'zod'
import { invalidOption } from '../../errors.js'

/** The actions of a profile (`SCMP_ACT_KILL` is libseccomp's name for killing the thread). */
export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
] as const
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number]

/** Argument comparisons; for `SCMP_CMP_MASKED_EQ`, `value` is the mask and `valueTwo` the datum. */
export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number]

/** The `flags` of the OCI runtime spec that ctr can honour. */
export const SECCOMP_FLAGS = ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] as const
export type SeccompFlag = (typeof SECCOMP_FLAGS)[number]

const U64_MAX = (1n << 64n) - 1n

/**
 * A 64-bit unsigned argument value. JSON numbers above 2^53 lose precision when parsed, so
 * such values must come as a bigint or a decimal / `0x` hex string.
 */
const u64 = z
  .union([z.number(), z.bigint(), z.string()])
  .transform((v, ctx): bigint => {
    let b: bigint
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) {
        ctx.addIssue({
          code: 'custom',
          message: Number.isInteger(v)
            ? 'is above 2^53 and lost precision as a JSON number: write it as a string or a bigint'
            : 'must be an integer',
        })
        return z.NEVER
      }
      b = BigInt(v)
    } else if (typeof v === 'string') {
      if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: 'must be a decimal or 0x-hex integer' })
        return z.NEVER
      }
      b = BigInt(v)
    } else b = v
    if (b < 0n || b > U64_MAX) {
      ctx.addIssue({ code: 'custom', message: 'must be an unsigned 64-bit integer' })
      return z.NEVER
    }
    return b
  })

const argSchema = z.strictObject({
  index: z.number().int().min(0).max(5),
  value: u64,
  valueTwo: u64.optional(),
  op: z.enum(SECCOMP_OPERATORS),
})

const kernelVersion = z.string().regex(/^\d+\.\d+$/, 'a kernel version like "4.8"')

const filterSchema = z.strictObject({
  /** Capabilities (`CAP_SYS_ADMIN`): includes need all of them, excludes any of them. */
  caps: z.array(z.string()).optional(),
  /** libseccomp architecture names: `amd64`, `arm64`, `x86`, `x32`, `arm`, `s390x`, … */
  arches: z.array(z.string()).optional(),
  /** Kernel version `major.minor`: includes need at least it, excludes less than it. */
  minKernel: kernelVersion.optional(),
})

const errnoRet = z.number().int().min(0).max(0xffff)

const syscallSchema = z
  .strictObject({
    names: z.array(z.string().min(1)).optional(),
    /** The older single-name form. */
    name: z.string().min(1).optional(),
    action: z.enum(SECCOMP_ACTIONS),
    /** The errno of `SCMP_ACT_ERRNO` (default EPERM), or the message of `SCMP_ACT_TRACE`. */
    errnoRet: errnoRet.optional(),
    args: z.array(argSchema).nullish(),
    comment: z.string().optional(),
    includes: filterSchema.optional(),
    excludes: filterSchema.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.name !== undefined && s.names !== undefined)
      ctx.addIssue({ code: 'custom', path: ['name'], message: "use either 'name' or 'names', not both" })
    if (s.name === undefined && (s.names === undefined || s.names.length === 0))
      ctx.addIssue({ code: 'custom', path: ['names'], message: 'lists no syscall' })
  })

const archMapSchema = z.strictObject({
  architecture: z.string().regex(/^SCMP_ARCH_[A-Z0-9_]+$/, 'an SCMP_ARCH_* name'),
  subArchitectures: z.array(z.string().regex(/^SCMP_ARCH_[A-Z0-9_]+$/, 'an SCMP_ARCH_* name')).nullish(),
})

/** The zod schema of a seccomp profile. */
export const seccompProfileSchema = z
  .strictObject({
    defaultAction: z.enum(SECCOMP_ACTIONS),
    /** The errno of a `SCMP_ACT_ERRNO` default action (default EPERM). */
    defaultErrnoRet: errnoRet.optional(),
    architectures: z.array(z.string().regex(/^SCMP_ARCH_[A-Z0-9_]+$/, 'an SCMP_ARCH_* name')).nullish(),
    archMap: z.array(archMapSchema).nullish(),
    flags: z.array(z.enum(SECCOMP_FLAGS)).nullish(),
    listenerPath: z.string().optional(),
    listenerMetadata: z.string().optional(),
    syscalls: z.array(syscallSchema).nullish(),
  })
  .superRefine((p, ctx) => {
    if ((p.architectures?.length ?? 0) > 0 && (p.archMap?.length ?? 0) > 0)
      ctx.addIssue({ code: 'custom', path: ['archMap'], message: "use either 'architectures' or 'archMap', not both" })
  })

/** A seccomp profile as users write it (JSON numbers, or bigints / strings for 64-bit values). */
export type SeccompProfile = z.input<typeof seccompProfileSchema>
/** A validated profile: argument values are bigints. */
export type ParsedSeccompProfile = z.output<typeof seccompProfileSchema>
/** One entry of `syscalls`. */
export type SeccompSyscallRule = z.input<typeof syscallSchema>
/** One argument comparison. */
export type SeccompArg = z.input<typeof argSchema>

/**
 * Validates a seccomp profile: a parsed object, or its JSON text. Throws a
 * {@link RuntimeError} `ERR_RUNTIME_INVALID_OPTIONS` whose `field` is the path of the first
 * bad field, prefixed by `options.field` when given.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { parseSeccompProfile } from '@ctr/runtime'
 * const profile = parseSeccompProfile(readFileSync('profile.json', 'utf8'), { field: 'seccomp' })
 * // a bad operator throws: field 'seccomp.syscalls.4.args.0.op'
 * ```
 */
export function parseSeccompProfile(input: unknown, options: { field?: string } = {}): ParsedSeccompProfile {
  const prefix = options.field ?? ''
  let value = input
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input)
    } catch (err) {
      throw invalidOption(prefix, `not valid JSON: ${(err as Error).message}`)
    }
  }
  const r = seccompProfileSchema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  const field = [prefix, ...issue.path.map(String)].filter((s) => s !== '').join('.')
  throw invalidOption(field, issue.message)
}
