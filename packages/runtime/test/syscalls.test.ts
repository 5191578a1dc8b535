import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ARCHES, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, hostArch, syscallName, syscallNumber } from '../src/index.js'

describe('syscall tables', () => {
  it('agree with the installed x86_64 uapi header', () => {
    const header = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h'
    if (!existsSync(header)) return
    const defs = [...readFileSync(header, 'utf8').matchAll(/^#define __NR_(\w+) (\d+)$/gm)]
    expect(defs.length).toBeGreaterThan(300)
    for (const [, name, nr] of defs) expect(syscallNumber('x86_64', name!), name).toBe(Number(nr))
  })

  it('know the well-known numbers of both architectures', () => {
    const x86: Record<string, number> = { read: 0, open: 2, clone: 56, fork: 57, execve: 59, unshare: 272, setns: 308, clone3: 435, mount_setattr: 442, mseal: 462, uretprobe: 335 }
    const arm: Record<string, number> = { openat: 56, unshare: 97, sethostname: 161, socket: 198, clone: 220, execve: 221, setns: 268, clone3: 435, mseal: 462, listxattrat: 465 }
    for (const [n, v] of Object.entries(x86)) expect(syscallNumber('x86_64', n), n).toBe(v)
    for (const [n, v] of Object.entries(arm)) expect(syscallNumber('aarch64', n), n).toBe(v)
    expect(syscallNumber('aarch64', 'open')).toBeUndefined()
    expect(syscallNumber('aarch64', 'uretprobe')).toBeUndefined()
    expect(syscallNumber('x86_64', 'toString')).toBeUndefined()
    expect(syscallName('x86_64', 59)).toBe('execve')
  })

  it('have unique numbers and the audit constants', () => {
    for (const a of Object.values(ARCHES)) {
      const nums = Object.values(a.syscalls)
      expect(new Set(nums).size).toBe(nums.length)
    }
    expect(AUDIT_ARCH_X86_64).toBe(0xc000003e)
    expect(AUDIT_ARCH_AARCH64).toBe(0xc00000b7)
    expect(hostArch()).toBe(process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : undefined)
  })
})
