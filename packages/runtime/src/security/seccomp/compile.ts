/**
 * Compiles a seccomp profile (Docker / OCI format) into a classic BPF program for
 * `seccomp(SECCOMP_SET_MODE_FILTER)`, in TypeScript, without libseccomp.
 *
 * The program:
 *
 * 1. checks `seccomp_data.arch`: a syscall made through another ABI (32-bit int 0x80 on
 *    x86_64, AArch32 on aarch64) gets `badArchAction` (default SCMP_ACT_KILL_PROCESS, as
 *    libseccomp kills on a foreign architecture). On x86_64 the x32 ABI (syscall numbers
 *    with bit 30 set) is rejected the same way, as libseccomp does for an x86_64-only filter;
 * 2. returns ENOSYS for syscall numbers above every syscall the profile names (as runc
 *    does), so that a program probing a syscall newer than the profile falls back instead of
 *    seeing EPERM — unless the default action is ALLOW or LOG;
 * 3. finds the syscall by a binary search over segments of consecutive numbers that go to
 *    the same place (about seven comparisons for Docker's profile rather than several
 *    hundred, in ~5 times fewer instructions than one comparison per syscall), then walks that
 *    syscall's argument rules in profile order: the first rule whose comparisons all hold
 *    decides; then an unconditional rule for the syscall if there is one; else the default
 *    action.
 *
 * Rule semantics follow Docker and runc: `includes`/`excludes` select rules by
 * capabilities, architecture and kernel version; names unknown on the architecture are
 * skipped (as libseccomp does), and reported in `skipped`; the comparisons of one rule are
 * ANDed, except that when a rule compares the same argument twice each comparison becomes a
 * rule of its own (ORed), as runc does; arguments are compared as 64-bit values.
 */
import os from 'node:os'
import { Op, type Step } from '@ctr/native'
import type { SeccompFilter } from '@ctr/namespaces'
import { invalidOption, RuntimeError } from '../../errors.js'
import { normalizeCapabilityName } from '../capabilities.js'
import { BPF, BpfAssembler, NEXT, type Label, type SockFilter } from './bpf.js'
import { parseSeccompProfile, type ParsedSeccompProfile, type SeccompAction, type SeccompProfile } from './profile.js'
import { ARCHES, hostArch, syscallNumber, X32_SYSCALL_BIT, type SeccompArch } from './syscalls.js'

/** `SECCOMP_RET_*` values. */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const

/** `SECCOMP_FILTER_FLAG_*` values. */
export const SECCOMP_FILTER_FLAG = { TSYNC: 1, LOG: 2, SPEC_ALLOW: 4 } as const

const EPERM = 1
const ENOSYS = 38
const MAX_ERRNO = 4095

/** Offsets in `struct seccomp_data`. */
const DATA_NR = 0
const DATA_ARCH = 4
const argLow = (i: number) => 16 + 8 * i
const argHigh = (i: number) => 20 + 8 * i // both supported architectures are little-endian

export interface CompileSeccompOptions {
  /** The architecture to build for; default this host's. */
  arch?: SeccompArch
  /**
   * The capabilities the container will have (`CAP_SYS_ADMIN` or `SYS_ADMIN`, any case),
   * for the profile's `includes.caps` / `excludes.caps`. Docker uses the bounding set.
   */
  caps: readonly string[]
  /** Kernel release for `minKernel` (`"6.1.0-18-amd64"`); default this host's (`os.release()`). */
  kernel?: string
  /** What a syscall through a foreign ABI gets. Default `SCMP_ACT_KILL_PROCESS`. */
  badArchAction?: 'SCMP_ACT_KILL_PROCESS' | 'SCMP_ACT_KILL_THREAD' | 'SCMP_ACT_KILL' | 'SCMP_ACT_TRAP' | 'SCMP_ACT_ERRNO'
  /**
   * Return ENOSYS for syscall numbers above the highest one the profile names (default
   * true). Ignored when the default action is ALLOW or LOG.
   */
  enosysAboveKnown?: boolean
  /** Prefix for the `field` of errors (`'seccomp'` gives `seccomp.syscalls.3.action`). */
  field?: string
}

/** A compiled filter, ready for a plan's `Op.Seccomp` step. */
export interface CompiledSeccomp {
  arch: SeccompArch
  /** `struct sock_filter[]`, 8 bytes per instruction, little-endian. */
  program: Buffer
  /** The decoded instructions (for inspection and tests). */
  filters: SockFilter[]
  /** `seccomp(2)` flags from the profile's `flags` (`SECCOMP_FILTER_FLAG_*`); usually 0. */
  flags: number
  /** Syscall names of the selected rules that do not exist on `arch` (skipped, as libseccomp does). */
  skipped: string[]
}

type Cmp = { index: number; op: string; value: bigint; valueTwo: bigint }
interface Rule {
  action: number
  conds: Cmp[]
}

function actionValue(action: SeccompAction, errnoRet: number | undefined, field: string): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP
    case 'SCMP_ACT_ERRNO': {
      const e = errnoRet ?? EPERM
      if (e > MAX_ERRNO) throw invalidOption(field, `errno ${e} is above ${MAX_ERRNO}`)
      return (SECCOMP_RET.ERRNO | e) >>> 0
    }
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | (errnoRet ?? EPERM)) >>> 0
    case 'SCMP_ACT_NOTIFY':
      throw new RuntimeError('ERR_RUNTIME_SECCOMP', `${field}: SCMP_ACT_NOTIFY needs a seccomp listener, which ctr does not support`, {
        field,
      })
  }
}

function kernelVersion(release: string, field: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release)
  if (!m) throw invalidOption(field, `cannot read a kernel version from "${release}"`)
  return [Number(m[1]), Number(m[2])]
}

function atLeast(kernel: [number, number], min: string): boolean {
  const [maj, min_] = min.split('.').map(Number) as [number, number]
  return kernel[0] > maj || (kernel[0] === maj && kernel[1] >= min_)
}

function archMatches(list: readonly string[], arch: SeccompArch): boolean {
  return list.includes(ARCHES[arch].libseccompName) || list.includes(arch)
}

/**
 * Compiles a seccomp profile into a BPF filter for one architecture. The profile is
 * validated first ({@link parseSeccompProfile}); errors are {@link RuntimeError}s:
 * `ERR_RUNTIME_INVALID_OPTIONS` with the `field` for a malformed profile, and
 * `ERR_RUNTIME_SECCOMP` for what ctr cannot build (SCMP_ACT_NOTIFY, a listener, more than
 * 4096 instructions).
 *
 * @example
 * ```ts
 * import { Op } from '@ctr/native'
 * import { compileSeccomp, defaultSeccompProfile, DEFAULT_CAPABILITIES } from '@ctr/runtime'
 * const c = compileSeccomp(defaultSeccompProfile(), { caps: [...DEFAULT_CAPABILITIES] })
 * await spawn({ argv: ['sh'], noNewPrivileges: true, seccomp: seccompFilter(c) }) // @ctr/namespaces
 * // or, in a hand-built plan, after no_new_privs and last before exec: seccompStep(c)
 * ```
 */
export function compileSeccomp(profile: SeccompProfile | ParsedSeccompProfile, options: CompileSeccompOptions): CompiledSeccomp {
  const prefix = options.field ?? ''
  const f = (...parts: (string | number)[]) => [prefix, ...parts.map(String)].filter((s) => s !== '').join('.')
  const p = parseSeccompProfile(profile, { field: prefix })

  const arch = options.arch ?? hostArch()
  if (arch === undefined || !(arch in ARCHES)) {
    throw invalidOption('arch', `cannot build seccomp filters for ${options.arch ?? process.arch} (x86_64 and aarch64 only)`)
  }
  if (p.listenerPath !== undefined && p.listenerPath !== '') {
    throw new RuntimeError('ERR_RUNTIME_SECCOMP', `${f('listenerPath')}: seccomp listeners are not supported`, { field: f('listenerPath') })
  }
  const caps = new Set(options.caps.map((c) => normalizeCapabilityName(c)))
  const kernel = kernelVersion(options.kernel ?? os.release(), 'kernel')
  const defaultAction = actionValue(p.defaultAction, p.defaultErrnoRet, f('defaultAction'))
  const badArch = actionValue(options.badArchAction ?? 'SCMP_ACT_KILL_PROCESS', undefined, 'badArchAction')

  let flags = 0
  for (const fl of p.flags ?? []) {
    flags |= SECCOMP_FILTER_FLAG[fl.replace('SECCOMP_FILTER_FLAG_', '') as keyof typeof SECCOMP_FILTER_FLAG]
  }

  // Select rules (Docker: excludes first, then includes) and gather them per syscall number.
  const conditional = new Map<number, Rule[]>()
  const unconditional = new Map<number, number>()
  const skipped = new Set<string>()
  let highest = -1
  ;(p.syscalls ?? []).forEach((s, i) => {
    const names = s.names ?? (s.name === undefined ? [] : [s.name])
    for (const name of names) {
      const nr = syscallNumber(arch, name)
      if (nr !== undefined && nr > highest) highest = nr
    }
    const ex = s.excludes
    if (ex) {
      if (ex.arches && archMatches(ex.arches, arch)) return
      if (ex.caps && ex.caps.some((c) => caps.has(normalizeCapabilityName(c)))) return
      if (ex.minKernel !== undefined && atLeast(kernel, ex.minKernel)) return
    }
    const inc = s.includes
    if (inc) {
      if (inc.arches && inc.arches.length > 0 && !archMatches(inc.arches, arch)) return
      if (inc.caps && !inc.caps.every((c) => caps.has(normalizeCapabilityName(c)))) return
      if (inc.minKernel !== undefined && !atLeast(kernel, inc.minKernel)) return
    }
    const action = actionValue(s.action, s.errnoRet, f('syscalls', i, 'action'))
    const conds: Cmp[] = (s.args ?? []).map((a) => ({ index: a.index, op: a.op, value: a.value, valueTwo: a.valueTwo ?? 0n }))
    const indexes = conds.map((c) => c.index)
    // runc: comparisons of one argument repeated in a rule are separate rules (ORed).
    const rules: Rule[] =
      new Set(indexes).size === indexes.length ? [{ action, conds }] : conds.map((c) => ({ action, conds: [c] }))
    for (const name of names) {
      const nr = syscallNumber(arch, name)
      if (nr === undefined) {
        skipped.add(name)
        continue
      }
      for (const r of rules) {
        if (r.conds.length === 0) {
          if (!unconditional.has(nr)) unconditional.set(nr, r.action)
        } else {
          const list = conditional.get(nr) ?? []
          list.push(r)
          conditional.set(nr, list)
        }
      }
    }
  })

  const a = new BpfAssembler()
  const rets = new Map<number, Label>()
  const retLabel = (value: number): Label => {
    let l = rets.get(value >>> 0)
    if (!l) rets.set(value >>> 0, (l = a.label(`ret ${value >>> 0}`)))
    return l
  }
  const DEFAULT = retLabel(defaultAction)
  const BADARCH = retLabel(badArch)

  // 1. architecture
  a.load(DATA_ARCH).jump(BPF.JEQ_K, ARCHES[arch].audit, NEXT, BADARCH)
  a.load(DATA_NR)
  if (arch === 'x86_64') a.jump(BPF.JGE_K, X32_SYSCALL_BIT, BADARCH, NEXT)
  // 2. newer than the profile
  const enosys = (options.enosysAboveKnown ?? true) && defaultAction !== SECCOMP_RET.ALLOW && defaultAction !== SECCOMP_RET.LOG
  if (enosys && highest >= 0) a.jump(BPF.JGT_K, highest, retLabel((SECCOMP_RET.ERRNO | ENOSYS) >>> 0), NEXT)

  // 3. dispatch: sorted numbers → where each goes
  const handlers = new Map<number, Label>()
  const entries: { nr: number; target: Label }[] = []
  for (const nr of new Set([...conditional.keys(), ...unconditional.keys()])) {
    const fallback = unconditional.get(nr) ?? defaultAction
    if (!conditional.has(nr)) {
      if (fallback !== defaultAction) entries.push({ nr, target: retLabel(fallback) })
      continue
    }
    const h = a.label(`syscall ${nr}`)
    handlers.set(nr, h)
    entries.push({ nr, target: h })
  }
  entries.sort((x, y) => x.nr - y.nr)

  // Consecutive numbers that go to the same place are one segment, and the search is over the
  // segments' starts: Docker's profile allows long runs of neighbouring syscalls, so this is
  // ~5 times fewer instructions than a comparison per syscall. The kernel translates and JITs
  // every instruction at each container's seccomp(2), and runs the search at every syscall.
  const segments: { start: number; target: Label }[] = []
  let end = 0 // one past the last number covered
  for (const { nr, target } of entries) {
    const last = segments.at(-1)
    if (last && end === nr && last.target === target) {
      end = nr + 1
      continue
    }
    if (nr > end || segments.length === 0) {
      if (nr > 0) segments.push({ start: end, target: DEFAULT })
    }
    segments.push({ start: nr, target })
    end = nr + 1
  }
  segments.push({ start: end, target: DEFAULT }) // everything above
  const tree = (lo: number, hi: number): void => {
    if (hi - lo === 1) {
      a.ja(segments[lo]!.target)
      return
    }
    if (hi - lo === 2) {
      a.jump(BPF.JGE_K, segments[lo + 1]!.start, segments[lo + 1]!.target, segments[lo]!.target)
      return
    }
    const mid = (lo + hi) >> 1
    const right = a.label('right')
    a.jump(BPF.JGE_K, segments[mid]!.start, right, NEXT)
    tree(lo, mid)
    a.place(right)
    tree(mid, hi)
  }
  tree(0, segments.length)

  // 4. argument rules
  for (const [nr, h] of handlers) {
    a.place(h)
    for (const rule of conditional.get(nr)!) {
      const nextRule = a.label('next rule')
      rule.conds.forEach((c, i) => {
        const last = i === rule.conds.length - 1
        const T: Label | typeof NEXT = last ? retLabel(rule.action) : NEXT
        compare(a, c, T, nextRule)
      })
      a.place(nextRule)
    }
    a.ja(retLabel(unconditional.get(nr) ?? defaultAction))
  }

  for (const [value, label] of rets) a.place(label).ret(value)

  let assembled: ReturnType<BpfAssembler['assemble']>
  try {
    assembled = a.assemble()
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_SECCOMP', `cannot build the seccomp filter: ${(err as Error).message}`, { cause: err })
  }
  return { arch, program: assembled.program, filters: assembled.filters, flags, skipped: [...skipped].sort() }
}

const hi32 = (v: bigint) => Number((v >> 32n) & 0xffffffffn)
const lo32 = (v: bigint) => Number(v & 0xffffffffn)

/**
 * Emits a 64-bit comparison of argument `c.index` as two 32-bit halves (high first):
 * continues at T (NEXT: right after the comparison) when it holds, else at F.
 */
function compare(a: BpfAssembler, c: Cmp, T: Label | typeof NEXT, F: Label): void {
  const i = c.index
  const v = c.value
  // NEXT means "after this comparison", which is not the instruction after the first jump
  const after = a.label('after comparison')
  const t: Label = T === NEXT ? after : T
  // unsigned 64-bit arg > v (or >= v with `eq`)
  const greater = (yes: Label, no: Label, eq: boolean) => {
    const low = a.label('low half')
    a.load(argHigh(i))
    a.jump(BPF.JGT_K, hi32(v), yes, NEXT)
    a.jump(BPF.JEQ_K, hi32(v), low, no)
    a.place(low).load(argLow(i))
    a.jump(eq ? BPF.JGE_K : BPF.JGT_K, lo32(v), yes, no)
  }
  const equal = (yes: Label, no: Label) => {
    a.load(argHigh(i)).jump(BPF.JEQ_K, hi32(v), NEXT, no)
    a.load(argLow(i)).jump(BPF.JEQ_K, lo32(v), yes, no)
  }
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      equal(t, F)
      break
    case 'SCMP_CMP_NE':
      equal(F, t)
      break
    case 'SCMP_CMP_GT':
      greater(t, F, false)
      break
    case 'SCMP_CMP_GE':
      greater(t, F, true)
      break
    case 'SCMP_CMP_LE':
      greater(F, t, false)
      break
    case 'SCMP_CMP_LT':
      greater(F, t, true)
      break
    case 'SCMP_CMP_MASKED_EQ': {
      // value is the mask, valueTwo the datum: (arg & mask) == datum
      const mask = v
      const datum = c.valueTwo
      if (hi32(mask) === 0 && hi32(datum) !== 0) {
        a.ja(F) // (high & 0) never equals a non-zero datum
        break
      }
      if (hi32(mask) !== 0) a.load(argHigh(i)).and(hi32(mask)).jump(BPF.JEQ_K, hi32(datum), NEXT, F)
      a.load(argLow(i)).and(lo32(mask)).jump(BPF.JEQ_K, lo32(datum), t, F)
      break
    }
    default:
      throw new Error(`unknown comparison ${c.op}`)
  }
  if (T === NEXT) a.place(after)
}

/**
 * The spawn-plan step that installs a compiled filter (`@ctr/native`'s `Op.Seccomp`). It
 * must come after `no_new_privs` (or run with CAP_SYS_ADMIN) and should be the last step
 * before exec, so that the setup steps are not filtered.
 *
 * @example
 * ```ts
 * steps.push({ op: Op.NoNewPrivs }, seccompStep(compileSeccomp(defaultSeccompProfile(), { caps })))
 * ```
 */
export function seccompStep(compiled: CompiledSeccomp): Step {
  return { op: Op.Seccomp, blob: compiled.program, n: [compiled.flags] }
}

/**
 * The `seccomp` option of `@ctr/namespaces`' `spawn()` and `enter()` for a compiled filter.
 * Without CAP_SYS_ADMIN in the child, also pass `noNewPrivileges: true`.
 *
 * @example
 * ```ts
 * import { spawn } from '@ctr/namespaces'
 * const c = compileSeccomp(defaultSeccompProfile(), { caps: [...DEFAULT_CAPABILITIES] })
 * await spawn({ argv: ['sh'], noNewPrivileges: true, seccomp: seccompFilter(c) })
 * ```
 */
export function seccompFilter(compiled: CompiledSeccomp): SeccompFilter {
  return { filter: compiled.program, flags: compiled.flags }
}
