import { describe, expect, it } from 'vitest'
import {
  ALLOWED_SOCKET_FAMILIES,
  AUDIT_ARCH_AARCH64,
  AUDIT_ARCH_X86_64,
  compileSeccomp,
  DEFAULT_CAPABILITIES,
  defaultSeccompProfile,
  RuntimeError,
  syscallNumber,
  type SeccompArch,
  type SeccompProfile,
} from '../src/index.js'
import { BpfAssembler, BPF, NEXT } from '../src/security/seccomp/bpf.js'
import { X86_64_SYSCALLS as X86 } from '../src/security/seccomp/syscall-tables.js'
import { decode, evaluate, run, validate, verdict, type SeccompData } from './helpers/bpf-interpreter.js'

const AUDIT_ARCH_I386 = 0x40000003
const CAPS = [...DEFAULT_CAPABILITIES]
const x86 = (name: string) => syscallNumber('x86_64', name)!
const arm = (name: string) => syscallNumber('aarch64', name)!

function check(profile: SeccompProfile, caps: string[] = CAPS, kernel = '6.1.0', arch: SeccompArch = 'x86_64') {
  const c = compileSeccomp(profile, { caps, kernel, arch })
  validate(c.program)
  const audit = arch === 'x86_64' ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64
  return {
    c,
    call: (nr: number, ...args: (bigint | number)[]) => evaluate(c.program, { nr, arch: audit, args }),
    raw: (d: SeccompData) => evaluate(c.program, d),
  }
}

// An oracle written from the documented semantics, independent of the compiler: what should
// a syscall get under a profile?
function oracle(profile: SeccompProfile, arch: SeccompArch, caps: string[], kernel: [number, number], d: SeccompData): string {
  const audit = arch === 'x86_64' ? AUDIT_ARCH_X86_64 : AUDIT_ARCH_AARCH64
  if (d.arch !== audit) return 'KILL_PROCESS'
  if (arch === 'x86_64' && d.nr >= 0x40000000) return 'KILL_PROCESS'
  const act = (a: string, e?: number) =>
    a === 'SCMP_ACT_ALLOW' ? 'ALLOW' : a === 'SCMP_ACT_ERRNO' ? `ERRNO(${e ?? 1})` : a === 'SCMP_ACT_KILL_PROCESS' ? 'KILL_PROCESS' : a
  const def = act(profile.defaultAction, profile.defaultErrnoRet)
  const libName = arch === 'x86_64' ? 'amd64' : 'arm64'
  const nums = (s: { names?: string[]; name?: string }) =>
    (s.names ?? [s.name!]).map((n) => syscallNumber(arch, n)).filter((n): n is number => n !== undefined)
  const highest = Math.max(...(profile.syscalls ?? []).flatMap(nums))
  if (d.nr > highest && def !== 'ALLOW') return 'ERRNO(38)'
  const ge = (min: string) => {
    const [a, b] = min.split('.').map(Number) as [number, number]
    return kernel[0] > a || (kernel[0] === a && kernel[1] >= b)
  }
  const has = (c: string) => caps.includes(c)
  const args = (d.args ?? []).map((a) => BigInt.asUintN(64, BigInt(a)))
  const holds = (a: { index: number; op: string; value: number | bigint | string; valueTwo?: number | bigint | string }) => {
    const x = args[a.index] ?? 0n
    const v = BigInt(a.value)
    const v2 = BigInt(a.valueTwo ?? 0)
    switch (a.op) {
      case 'SCMP_CMP_EQ': return x === v
      case 'SCMP_CMP_NE': return x !== v
      case 'SCMP_CMP_LT': return x < v
      case 'SCMP_CMP_LE': return x <= v
      case 'SCMP_CMP_GT': return x > v
      case 'SCMP_CMP_GE': return x >= v
      case 'SCMP_CMP_MASKED_EQ': return (x & v) === v2
    }
    throw new Error(a.op)
  }
  let unconditional: string | undefined
  for (const s of profile.syscalls ?? []) {
    if (!nums(s).includes(d.nr)) continue
    if (s.excludes?.arches?.includes(libName) || s.excludes?.caps?.some(has) || (s.excludes?.minKernel && ge(s.excludes.minKernel))) continue
    if ((s.includes?.arches && !s.includes.arches.includes(libName)) || (s.includes?.caps && !s.includes.caps.every(has))) continue
    if (s.includes?.minKernel && !ge(s.includes.minKernel)) continue
    const a = s.args ?? []
    if (a.length === 0) {
      unconditional ??= act(s.action, s.errnoRet)
      continue
    }
    const sameIndex = new Set(a.map((x) => x.index)).size !== a.length
    if (sameIndex ? a.some(holds) : a.every(holds)) return act(s.action, s.errnoRet)
  }
  return unconditional ?? def
}

describe('compileSeccomp: Docker default profile on x86_64', () => {
  const { c, call, raw } = check(defaultSeccompProfile())

  it('is a valid program well inside the kernel limit, and reports names x86_64 lacks', () => {
    expect(c.program.length % 8).toBe(0)
    expect(c.filters.length).toBeLessThan(1000)
    expect(c.flags).toBe(0)
    expect(c.arch).toBe('x86_64')
    expect(c.skipped).toContain('chown32')
    expect(c.skipped).toContain('riscv_hwprobe')
    expect(c.skipped).not.toContain('read')
  })

  it('allows the everyday syscalls', () => {
    for (const n of ['read', 'write', 'openat', 'close', 'execve', 'mmap', 'futex', 'exit_group', 'rt_sigreturn', 'wait4', 'arch_prctl']) {
      expect(call(x86(n)), n).toBe('ALLOW')
    }
  })

  it('finds each allowed syscall in a handful of instructions (binary search, not a linear scan)', () => {
    const steps = ['read', 'writev', 'statx', 'rseq', 'futex_waitv'].map((n) => run(c.program, { nr: x86(n), arch: AUDIT_ARCH_X86_64 }).steps)
    for (const s of steps) expect(s).toBeLessThan(20)
  })

  it('denies with EPERM what needs capabilities the container lacks', () => {
    for (const n of ['mount', 'umount2', 'unshare', 'setns', 'sethostname', 'setdomainname', 'reboot', 'init_module', 'kexec_load', 'bpf']) {
      expect(call(x86(n)), n).toBe('ERRNO(1)')
    }
    expect(call(x86('chroot'))).toBe('ALLOW') // CAP_SYS_CHROOT is in the default set
    expect(call(x86('keyctl'))).toBe('ERRNO(1)')
    expect(call(x86('io_uring_setup'))).toBe('ERRNO(1)')
  })

  it('clone: no namespace flags without CAP_SYS_ADMIN; clone3 gets ENOSYS', () => {
    const SIGCHLD = 17
    expect(call(x86('clone'), 0x01200000 | SIGCHLD)).toBe('ALLOW') // fork()
    expect(call(x86('clone'), 0x003d0f00)).toBe('ALLOW') // pthread_create
    expect(call(x86('clone'), 0x10000000 | SIGCHLD)).toBe('ERRNO(1)') // CLONE_NEWUSER
    expect(call(x86('clone'), 0x00020000)).toBe('ERRNO(1)') // CLONE_NEWNS
    expect(call(x86('clone'), 0x40000000)).toBe('ERRNO(1)') // CLONE_NEWNET
    expect(call(x86('clone3'))).toBe('ERRNO(38)')
  })

  it('ptrace needs kernel 4.8 or CAP_SYS_PTRACE', () => {
    expect(call(x86('ptrace'))).toBe('ALLOW')
    expect(check(defaultSeccompProfile(), CAPS, '4.4.0').call(x86('ptrace'))).toBe('ERRNO(1)')
    expect(check(defaultSeccompProfile(), [...CAPS, 'CAP_SYS_PTRACE'], '4.4.0').call(x86('ptrace'))).toBe('ALLOW')
  })

  it('socket: only the allowed address families, compared on all 64 bits', () => {
    for (let family = 0; family <= 50; family++) {
      const expected = family === 0 || ALLOWED_SOCKET_FAMILIES.includes(family) ? 'ALLOW' : 'ERRNO(1)'
      expect(call(x86('socket'), family), `family ${family}`).toBe(expected)
    }
    expect(call(x86('socket'), 40)).toBe('ERRNO(1)') // AF_VSOCK
    expect(call(x86('socket'), 38)).toBe('ERRNO(1)') // AF_ALG
    expect(call(x86('socket'), (1n << 32n) | 2n)).toBe('ERRNO(1)')
  })

  it('personality: only the listed values', () => {
    for (const v of [0, 8, 0x20000, 0x20008, 0xffffffff]) expect(call(x86('personality'), v)).toBe('ALLOW')
    expect(call(x86('personality'), 0x0400000)).toBe('ERRNO(1)') // READ_IMPLIES_EXEC
  })

  it('kills a syscall made through another ABI (i386, x32)', () => {
    expect(raw({ nr: x86('read'), arch: AUDIT_ARCH_I386 })).toBe('KILL_PROCESS')
    expect(raw({ nr: x86('read'), arch: AUDIT_ARCH_AARCH64 })).toBe('KILL_PROCESS')
    expect(raw({ nr: 0x40000000 | x86('read'), arch: AUDIT_ARCH_X86_64 })).toBe('KILL_PROCESS')
  })

  it('returns ENOSYS above every syscall the profile names, EPERM below', () => {
    expect(call(1000)).toBe('ERRNO(38)')
    expect(call(x86('file_setattr'))).toBe('ERRNO(38)') // newer than the profile
    expect(call(x86('kexec_load'))).toBe('ERRNO(1)')
  })

  it('capabilities open their syscalls (names normalised)', () => {
    const admin = check(defaultSeccompProfile(), [...CAPS, 'sys_admin'])
    for (const n of ['mount', 'unshare', 'setns', 'sethostname', 'clone3']) expect(admin.call(x86(n)), n).toBe('ALLOW')
    expect(admin.call(x86('clone'), 0x10000000)).toBe('ALLOW')
    expect(check(defaultSeccompProfile(), [...CAPS, 'CAP_SYS_BOOT']).call(x86('reboot'))).toBe('ALLOW')
    expect(check(defaultSeccompProfile(), []).call(x86('chroot'))).toBe('ERRNO(1)')
  })

  it('dispatches over runs of neighbouring syscalls, not one comparison per syscall: Docker\'s profile stays compact', () => {
    // The kernel translates and JITs every instruction at each container start and walks the
    // search at every syscall. One JEQ per allowed syscall was ~890 instructions.
    const { c: cc } = check(defaultSeccompProfile(), CAPS)
    expect(cc.program.length / 8).toBeLessThan(300)
  })

  it('matches the oracle for every syscall number and a spread of arguments', () => {
    const profile = defaultSeccompProfile()
    for (const caps of [CAPS, [...CAPS, 'CAP_SYS_ADMIN'], []]) {
      const { c: cc } = check(profile, caps)
      for (let nr = 0; nr < 520; nr++) {
        for (const a0 of [0n, 2n, 17n, 40n, 0x10000000n, 0x20008n, (1n << 63n) | 1n]) {
          const d = { nr, arch: AUDIT_ARCH_X86_64, args: [a0, a0] }
          expect(verdict(run(cc.program, d).ret), `nr ${nr} arg ${a0} caps ${caps.length}`).toBe(oracle(profile, 'x86_64', caps, [6, 1], d))
        }
      }
    }
  })
})

describe('compileSeccomp: aarch64', () => {
  const { c, call, raw } = check(defaultSeccompProfile(), CAPS, '6.1.0', 'aarch64')

  it('uses the aarch64 numbers and arch', () => {
    expect(call(arm('openat'))).toBe('ALLOW')
    expect(arm('openat')).toBe(56)
    expect(call(arm('mount'))).toBe('ERRNO(1)')
    expect(call(arm('clone'), 0x10000000)).toBe('ERRNO(1)')
    expect(call(arm('clone3'))).toBe('ERRNO(38)')
    expect(raw({ nr: arm('openat'), arch: AUDIT_ARCH_X86_64 })).toBe('KILL_PROCESS')
    expect(raw({ nr: arm('openat'), arch: 0x40000028 /* AUDIT_ARCH_ARM */ })).toBe('KILL_PROCESS')
  })

  it('skips names aarch64 does not have', () => {
    expect(c.skipped).toEqual(expect.arrayContaining(['open', 'stat', 'fork', 'epoll_wait']))
    expect(c.skipped).not.toContain('openat')
    // a rule for other arches is dropped before its names are looked up
    expect(c.skipped).not.toContain('arch_prctl')
  })

  it('matches the oracle for every syscall number', () => {
    const profile = defaultSeccompProfile()
    for (let nr = 0; nr < 520; nr++) {
      for (const a0 of [0n, 2n, 40n, 0x10000000n]) {
        const d = { nr, arch: AUDIT_ARCH_AARCH64, args: [a0] }
        expect(verdict(run(c.program, d).ret), `nr ${nr}`).toBe(oracle(profile, 'aarch64', CAPS, [6, 1], d))
      }
    }
  })
})

describe('compileSeccomp: rules and actions', () => {
  const nr = x86('ioctl')
  const cmp = (op: string, value: bigint | number, valueTwo?: bigint | number): SeccompProfile => ({
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [
      { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 2, value, ...(valueTwo === undefined ? {} : { valueTwo }), op: op as 'SCMP_CMP_EQ' }] },
    ],
  })

  it('compares 64-bit arguments as the unsigned values they are', () => {
    const V = 0x1_0000_0005n
    const samples = [0n, 5n, V - 1n, V, V + 1n, 0xffff_ffffn, 0x1_0000_0000n, 0x2_0000_0000n, 0x1_ffff_ffffn, (1n << 64n) - 1n]
    const ops: [string, (x: bigint) => boolean][] = [
      ['SCMP_CMP_EQ', (x) => x === V],
      ['SCMP_CMP_NE', (x) => x !== V],
      ['SCMP_CMP_LT', (x) => x < V],
      ['SCMP_CMP_LE', (x) => x <= V],
      ['SCMP_CMP_GT', (x) => x > V],
      ['SCMP_CMP_GE', (x) => x >= V],
    ]
    for (const [op, f] of ops) {
      const { call } = check(cmp(op, V))
      for (const x of samples) expect(call(nr, 0, 0, x), `${op} ${x}`).toBe(f(x) ? 'ALLOW' : 'ERRNO(1)')
    }
  })

  it('MASKED_EQ: value is the mask, valueTwo the datum, on both halves', () => {
    const mask = 0xff00_0000_0000_00f0n
    const { call } = check(cmp('SCMP_CMP_MASKED_EQ', mask, 0x1200_0000_0000_0030n))
    expect(call(nr, 0, 0, 0x1234_5678_9abc_de3fn)).toBe('ALLOW')
    expect(call(nr, 0, 0, 0x1334_5678_9abc_de3fn)).toBe('ERRNO(1)')
    expect(call(nr, 0, 0, 0x1234_5678_9abc_de4fn)).toBe('ERRNO(1)')
    // a datum with bits outside a 32-bit mask can never match
    const never = check(cmp('SCMP_CMP_MASKED_EQ', 0xf0, 0x1_0000_0000n))
    expect(never.call(nr, 0, 0, 0x1_0000_0000n)).toBe('ERRNO(1)')
    const low = check(cmp('SCMP_CMP_MASKED_EQ', 0xf0, 0x30))
    expect(low.call(nr, 0, 0, 0xffff_ffff_0000_003fn)).toBe('ALLOW')
  })

  it('ANDs comparisons of different arguments; ORs repeated comparisons of one argument (runc)', () => {
    const and = check({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 2, op: 'SCMP_CMP_EQ' }] }],
    })
    expect(and.call(nr, 1, 2)).toBe('ALLOW')
    expect(and.call(nr, 1, 3)).toBe('ERRNO(1)')
    expect(and.call(nr, 0, 2)).toBe('ERRNO(1)')
    const or = check({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 0, value: 7, op: 'SCMP_CMP_EQ' }] }],
    })
    expect(or.call(nr, 1)).toBe('ALLOW')
    expect(or.call(nr, 7)).toBe('ALLOW')
    expect(or.call(nr, 2)).toBe('ERRNO(1)')
  })

  it('argument rules first in profile order, then the unconditional rule, then the default', () => {
    const { call } = check({
      defaultAction: 'SCMP_ACT_KILL_PROCESS',
      syscalls: [
        { names: ['ioctl'], action: 'SCMP_ACT_LOG' },
        { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 25, args: [{ index: 1, value: 0x5401, op: 'SCMP_CMP_EQ' }] },
        { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: 0x5400, op: 'SCMP_CMP_GE' }] },
        { names: ['write'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }] },
      ],
    })
    expect(call(nr, 0, 0x5401)).toBe('ERRNO(25)')
    expect(call(nr, 0, 0x5402)).toBe('ALLOW')
    expect(call(nr, 0, 0x10)).toBe('LOG')
    expect(call(x86('write'), 2)).toBe('ERRNO(1)')
    expect(call(x86('write'), 1)).toBe('KILL_PROCESS')
    expect(call(x86('read'))).toBe('KILL_PROCESS')
  })

  it('encodes every action', () => {
    const { call } = check({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_KILL' },
        { names: ['write'], action: 'SCMP_ACT_KILL_THREAD' },
        { names: ['open'], action: 'SCMP_ACT_KILL_PROCESS' },
        { names: ['close'], action: 'SCMP_ACT_TRAP' },
        { names: ['stat'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
        { names: ['fstat'], action: 'SCMP_ACT_LOG' },
        { names: ['lstat'], action: 'SCMP_ACT_ERRNO' },
        { names: ['poll'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
      ],
    })
    expect(call(x86('read'))).toBe('KILL_THREAD')
    expect(call(x86('write'))).toBe('KILL_THREAD')
    expect(call(x86('open'))).toBe('KILL_PROCESS')
    expect(call(x86('close'))).toBe('TRAP(0)')
    expect(call(x86('stat'))).toBe('TRACE(7)')
    expect(call(x86('fstat'))).toBe('LOG')
    expect(call(x86('lstat'))).toBe('ERRNO(1)')
    expect(call(x86('poll'))).toBe('ERRNO(13)')
    // an allow-by-default profile has no ENOSYS stub
    expect(call(1000)).toBe('ALLOW')
    expect(call(x86('mmap'))).toBe('ALLOW')
  })

  it('defaultErrnoRet, badArchAction and enosysAboveKnown', () => {
    const p: SeccompProfile = { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] }
    const c = compileSeccomp(p, { caps: [], arch: 'x86_64', badArchAction: 'SCMP_ACT_ERRNO', enosysAboveKnown: false })
    expect(evaluate(c.program, { nr: x86('write'), arch: AUDIT_ARCH_X86_64 })).toBe('ERRNO(13)')
    expect(evaluate(c.program, { nr: 900, arch: AUDIT_ARCH_X86_64 })).toBe('ERRNO(13)')
    expect(evaluate(c.program, { nr: 0, arch: AUDIT_ARCH_I386 })).toBe('ERRNO(1)')
  })

  it('includes and excludes by arch, caps and kernel', () => {
    const p: SeccompProfile = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['arm64'] } },
        { names: ['write'], action: 'SCMP_ACT_ALLOW', excludes: { arches: ['amd64'] } },
        { names: ['close'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_NET_ADMIN', 'CAP_NET_RAW'] } },
        { names: ['dup'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'] } },
        { names: ['pipe'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '5.10' } },
        { names: ['poll'], action: 'SCMP_ACT_ALLOW', excludes: { minKernel: '5.10' } },
      ],
    }
    const a = check(p, ['CAP_NET_RAW'], '5.4.0')
    expect([a.call(x86('read')), a.call(x86('write')), a.call(x86('close')), a.call(x86('dup')), a.call(x86('pipe')), a.call(x86('poll'))]).toEqual([
      'ERRNO(1)', 'ERRNO(1)', 'ERRNO(1)', 'ALLOW', 'ERRNO(1)', 'ALLOW',
    ])
    const b = check(p, ['net_admin', 'NET_RAW'], '5.10.3')
    expect([b.call(x86('close')), b.call(x86('dup')), b.call(x86('pipe')), b.call(x86('poll'))]).toEqual(['ALLOW', 'ERRNO(1)', 'ALLOW', 'ERRNO(1)'])
    const c = check(p, [], '6.1', 'aarch64')
    expect([c.call(arm('read')), c.call(arm('write'))]).toEqual(['ALLOW', 'ALLOW'])
  })

  it('flags from the profile', () => {
    const c = compileSeccomp(
      { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] },
      { caps: [], arch: 'x86_64' },
    )
    expect(c.flags).toBe(2 | 4)
  })

  it('handles jumps beyond 255 instructions with trampolines', () => {
    // 250 syscalls with argument rules: their handlers lie far behind the search tree
    const entries = Object.entries(X86).filter(([, n]) => n < 250)
    const syscalls = entries.map(([name, n]) => ({
      names: [name],
      action: 'SCMP_ACT_ERRNO' as const,
      errnoRet: n + 1,
      args: [{ index: 0, value: (BigInt(n + 1) << 32n) | 7n, op: 'SCMP_CMP_EQ' as const }],
    }))
    const { c, call } = check({ defaultAction: 'SCMP_ACT_ALLOW', syscalls })
    expect(c.filters.length).toBeGreaterThan(1000)
    expect(c.filters.some((f) => f.code === BPF.JA && f.k > 255)).toBe(true)
    for (const [, n] of entries) {
      expect(call(n, (BigInt(n + 1) << 32n) | 7n)).toBe(`ERRNO(${n + 1})`)
      expect(call(n, 7)).toBe('ALLOW')
      expect(call(n, (BigInt(n + 2) << 32n) | 7n)).toBe('ALLOW')
    }
  })

  it('the assembler trampolines far branches of a single jump', () => {
    const a = new BpfAssembler()
    const far = a.label('far')
    const near = a.label('near')
    a.load(0).jump(BPF.JEQ_K, 7, far, near)
    a.place(near)
    for (let i = 0; i < 600; i++) a.ret(i + 1000)
    a.place(far).ret(42)
    const { program, filters } = a.assemble()
    validate(program)
    expect(filters[1]).toMatchObject({ code: BPF.JEQ_K, jt: 0, jf: 1 })
    expect(filters[2]).toMatchObject({ code: BPF.JA, k: 601 - 1 + 0 })
    expect(run(program, { nr: 7, arch: 0 }).ret).toBe(42)
    expect(run(program, { nr: 8, arch: 0 }).ret).toBe(1000)
    expect(decode(program)).toHaveLength(604)
  })

  it('the assembler rejects unplaced labels and dangling NEXT', () => {
    const a = new BpfAssembler()
    a.load(0).jump(BPF.JEQ_K, 1, a.label('nowhere'), NEXT)
    expect(() => a.assemble()).toThrow(/NEXT|never placed/)
  })
})


describe('compileSeccomp: errors', () => {
  it('rejects SCMP_ACT_NOTIFY and listeners with ERR_RUNTIME_SECCOMP naming the field', () => {
    const err = (() => {
      try {
        compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }, { caps: [], arch: 'x86_64', field: 'seccomp' })
      } catch (e) {
        return e as RuntimeError
      }
    })()
    expect(err).toBeInstanceOf(RuntimeError)
    expect(err?.code).toBe('ERR_RUNTIME_SECCOMP')
    expect(err?.field).toBe('seccomp.syscalls.0.action')
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/x.sock' }, { caps: [], arch: 'x86_64' })).toThrow(
      expect.objectContaining({ code: 'ERR_RUNTIME_SECCOMP', field: 'listenerPath' }),
    )
  })

  it('rejects a filter beyond 4096 instructions', () => {
    const syscalls = Array.from({ length: 1500 }, (_, i) => ({
      names: ['ioctl'],
      action: 'SCMP_ACT_ALLOW' as const,
      args: [{ index: 1, value: i, op: 'SCMP_CMP_EQ' as const }],
    }))
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls }, { caps: [], arch: 'x86_64' })).toThrow(
      expect.objectContaining({ code: 'ERR_RUNTIME_SECCOMP', message: expect.stringMatching(/4096/) }),
    )
  })

  it('rejects an errno above 4095, an unknown arch and a bad kernel string', () => {
    expect(() =>
      compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 5000 }, { caps: [], arch: 'x86_64' }),
    ).toThrow(expect.objectContaining({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field: 'defaultAction' }))
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, { caps: [], arch: 'mips' as 'x86_64' })).toThrow(
      expect.objectContaining({ field: 'arch' }),
    )
    expect(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW' }, { caps: [], kernel: 'banana' })).toThrow(
      expect.objectContaining({ field: 'kernel' }),
    )
  })
})
