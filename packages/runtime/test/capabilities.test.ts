import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CAPABILITIES } from '@ctr/namespaces'
import { allCapabilities, capabilitySets, DEFAULT_CAPABILITIES, resolveCapabilities, RuntimeError } from '../src/index.js'

const sorted = (list: readonly string[]) => CAPABILITIES.filter((c) => list.includes(c))

describe('resolveCapabilities', () => {
  it("is Docker's default set without options, in kernel order", () => {
    const caps = resolveCapabilities()
    expect(caps).toEqual(sorted(DEFAULT_CAPABILITIES))
    expect(caps).toHaveLength(14)
    expect(caps).toContain('CAP_NET_BIND_SERVICE')
    expect(caps).not.toContain('CAP_SYS_ADMIN')
    expect(caps).not.toContain('CAP_NET_ADMIN')
  })

  it('adds and drops, case-insensitive, CAP_ optional, without duplicates', () => {
    const caps = resolveCapabilities({ capAdd: ['net_admin', 'CAP_SYS_PTRACE', 'Sys_Ptrace', 'chown'], capDrop: ['mknod', 'CAP_NET_RAW'] })
    expect(caps).toContain('CAP_NET_ADMIN')
    expect(caps).toContain('CAP_SYS_PTRACE')
    expect(caps).not.toContain('CAP_MKNOD')
    expect(caps).not.toContain('CAP_NET_RAW')
    expect(new Set(caps).size).toBe(caps.length)
    expect(caps).toEqual(sorted(caps))
  })

  it('ALL: cap-add ALL keeps only the drops out; cap-drop ALL keeps only the adds', () => {
    expect(resolveCapabilities({ capAdd: ['ALL'], capDrop: ['sys_admin'] })).toEqual(allCapabilities().filter((c) => c !== 'CAP_SYS_ADMIN'))
    expect(resolveCapabilities({ capDrop: ['all'], capAdd: ['NET_BIND_SERVICE', 'chown'] })).toEqual(['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'])
    expect(resolveCapabilities({ capDrop: ['ALL'] })).toEqual([])
  })

  it('an add wins over a drop of the same capability (drop first, then add, as Docker)', () => {
    expect(resolveCapabilities({ capAdd: ['MKNOD'], capDrop: ['MKNOD'] })).toContain('CAP_MKNOD')
  })

  it('privileged: every capability this kernel knows and this process may give, whatever the adds and drops', () => {
    const all = resolveCapabilities({ privileged: true, capDrop: ['ALL'] })
    const mask = BigInt('0x' + /^CapBnd:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]!)
    const own = allCapabilities().filter((_c, i) => (mask >> BigInt(i)) & 1n)
    expect(all).toEqual(own)
    expect(all).toContain('CAP_SYS_ADMIN')
    expect(all.length).toBeGreaterThanOrEqual(30)
  })

  it('an unknown name is an error naming the field', () => {
    for (const [opts, field] of [
      [{ capAdd: ['NET_ADMIN', 'NET_ADMN'] }, 'capAdd.1'],
      [{ capDrop: ['CAP_FOO'] }, 'capDrop.0'],
      [{ capAdd: [''] }, 'capAdd.0'],
    ] as const) {
      let err: unknown
      try {
        resolveCapabilities(opts)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(RuntimeError)
      expect(err).toMatchObject({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field })
    }
  })

  it('capabilitySets: bounding, effective and permitted; inheritable and ambient empty', () => {
    const s = capabilitySets(['CAP_CHOWN', 'CAP_KILL'])
    expect(s).toEqual({
      bounding: ['CAP_CHOWN', 'CAP_KILL'],
      effective: ['CAP_CHOWN', 'CAP_KILL'],
      permitted: ['CAP_CHOWN', 'CAP_KILL'],
      inheritable: [],
      ambient: [],
    })
  })
})
