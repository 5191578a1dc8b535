import { describe, expect, it } from 'vitest'
import { compileSeccomp, DEFAULT_CAPABILITIES, defaultSeccompProfile, parseSeccompProfile, RuntimeError } from '../src/index.js'

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(RuntimeError)
    expect((err as RuntimeError).code).toBe('ERR_RUNTIME_INVALID_OPTIONS')
    return (err as RuntimeError).field
  }
  throw new Error('did not throw')
}

describe('parseSeccompProfile', () => {
  it('reads a Docker profile from JSON text, 64-bit values as bigints', () => {
    const p = parseSeccompProfile(
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 1,
        archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
        syscalls: [
          { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW', args: null, comment: '', includes: {}, excludes: {} },
          { name: 'clone', action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: '18446744073709551615', op: 'SCMP_CMP_EQ' }] },
          { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: '0xffff0000ffff', op: 'SCMP_CMP_EQ' }] },
        ],
      }),
    )
    expect(p.syscalls![1]!.args![0]!.value).toBe(2114060288n)
    expect(p.syscalls![2]!.args![0]!.value).toBe(2n ** 64n - 1n)
    expect(p.syscalls![3]!.args![0]!.value).toBe(0xffff0000ffffn)
  })

  it('names the bad field', () => {
    const base = { defaultAction: 'SCMP_ACT_ERRNO' }
    expect(fieldOf(() => parseSeccompProfile({}))).toBe('defaultAction')
    expect(fieldOf(() => parseSeccompProfile({ defaultAction: 'SCMP_ACT_NOPE' }))).toBe('defaultAction')
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'EQ' }] }] }))).toBe(
      'syscalls.0.args.0.op',
    )
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }))).toBe(
      'syscalls.0.args.0.index',
    )
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ name: 'a', names: ['b'], action: 'SCMP_ACT_ALLOW' }] }))).toBe('syscalls.0.name')
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] }))).toBe('syscalls.0.names')
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: 'new' } }] }))).toBe(
      'syscalls.0.includes.minKernel',
    )
    expect(fieldOf(() => parseSeccompProfile({ ...base, sycalls: [] }))).toBe('')
    expect(fieldOf(() => parseSeccompProfile({ ...base, architectures: ['SCMP_ARCH_X86_64'], archMap: [{ architecture: 'SCMP_ARCH_X86_64' }] }))).toBe(
      'archMap',
    )
    expect(fieldOf(() => parseSeccompProfile('{ not json', { field: 'seccomp' }))).toBe('seccomp')
    expect(fieldOf(() => parseSeccompProfile({ ...base, syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', bogus: 1 }] }, { field: 'seccomp' }))).toBe(
      'seccomp.syscalls.0',
    )
  })

  it('refuses integers that lost precision as JSON numbers', () => {
    const text = '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}'
    const err = (() => {
      try {
        parseSeccompProfile(text)
      } catch (e) {
        return e as RuntimeError
      }
    })()
    expect(err?.field).toBe('syscalls.0.args.0.value')
    expect(err?.message).toMatch(/string or a bigint/)
    expect(fieldOf(() => parseSeccompProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['x'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }] }] }))).toBe(
      'syscalls.0.args.0.value',
    )
  })

  it('the default profile survives a JSON round trip and compiles to the same filter', () => {
    const json = JSON.stringify(defaultSeccompProfile())
    const caps = [...DEFAULT_CAPABILITIES]
    const a = compileSeccomp(defaultSeccompProfile(), { caps, arch: 'x86_64', kernel: '6.1' })
    const b = compileSeccomp(JSON.parse(json), { caps, arch: 'x86_64', kernel: '6.1' })
    expect(b.program.equals(a.program)).toBe(true)
  })

  it('the default profile is a fresh copy each time', () => {
    const p = defaultSeccompProfile()
    p.syscalls!.length = 0
    expect(defaultSeccompProfile().syscalls!.length).toBeGreaterThan(20)
  })
})
