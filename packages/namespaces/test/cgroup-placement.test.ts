/**
 * Placement: the child is in its cgroups before it execs — cloned straight into a cgroup2
 * directory (CLONE_INTO_CGROUP), or written into v1 cgroup.procs by the parent while the child
 * waits — and the legacy clone() path (no clone3) places it too. Cgroups are created only
 * below this process's own cgroup and removed afterwards.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SpawnError } from '../src/index.js'
import { run, start, reap } from './helpers/util.js'

/** Our own cgroup in a hierarchy: the v2 one (`0::`) or a v1 controller's. */
function ownCgroup(controller: string | null): string | undefined {
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [id, controllers, p] = line.split(':')
    if (controller === null ? id === '0' && controllers === '' : controllers?.split(',').includes(controller)) return p
  }
  return undefined
}

function unifiedMount(): string | undefined {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (sep > 0 && f[sep + 1] === 'cgroup2') return f[4]
  }
  return undefined
}

const name = `ctr-test-placement-${process.pid}`
const unifiedRoot = unifiedMount()
const unifiedDir = unifiedRoot && ownCgroup(null) !== undefined ? path.join(unifiedRoot, ownCgroup(null)!, name) : undefined
const pidsOwn = ownCgroup('pids')
const pidsDir = pidsOwn !== undefined && fs.existsSync('/sys/fs/cgroup/pids') ? path.join('/sys/fs/cgroup/pids', pidsOwn, name) : undefined

beforeAll(() => {
  if (unifiedDir) fs.mkdirSync(unifiedDir)
  if (pidsDir) fs.mkdirSync(pidsDir)
})

afterAll(() => {
  for (const dir of [unifiedDir, pidsDir]) if (dir && fs.existsSync(dir)) fs.rmdirSync(dir)
})

function cgroupOf(text: string, controller: string | null): string | undefined {
  for (const line of text.split('\n')) {
    const [id, controllers, p] = line.split(':')
    if (controller === null ? id === '0' && controllers === '' : controllers?.split(',').includes(controller)) return p
  }
  return undefined
}

describe.each([
  ['clone3 (CLONE_INTO_CGROUP)', undefined],
  ['legacy clone (no clone3)', '1'],
])('cgroup placement through %s', (_label, noClone3) => {
  const withEnv = async <T>(fn: () => Promise<T>): Promise<T> => {
    const before = process.env.CTR_NO_CLONE3
    if (noClone3) process.env.CTR_NO_CLONE3 = noClone3
    try {
      return await fn()
    } finally {
      if (before === undefined) delete process.env.CTR_NO_CLONE3
      else process.env.CTR_NO_CLONE3 = before
    }
  }

  it.runIf(unifiedDir)('the program starts inside the cgroup2 directory', async () => {
    const r = await withEnv(() => run({ argv: ['cat', '/proc/self/cgroup'], cgroup: { unified: unifiedDir! } }))
    expect(r.code).toBe(0)
    expect(cgroupOf(r.stdout, null)).toBe(path.join(ownCgroup(null)!, name))
  })

  it.runIf(pidsDir)('the program starts inside the v1 cgroup, and so do its children', async () => {
    const r = await withEnv(() => run({ argv: ['sh', '-c', 'cat /proc/self/cgroup; sh -c "cat /proc/self/cgroup"'], cgroup: { legacy: [pidsDir!] } }))
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n').filter((l) => /:pids:/.test(l))
    expect(lines).toHaveLength(2)
    for (const l of lines) expect(cgroupOf(l, 'pids')).toBe(path.join(pidsOwn!, name))
  })

  it.runIf(pidsDir)('a running child is listed in cgroup.procs, and leaves it when it exits', async () => {
    const child = await withEnv(() => start({ argv: ['sleep', '30'], cgroup: { legacy: [pidsDir!] } }))
    try {
      expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(child.pid))
    } finally {
      await reap(child)
    }
    expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
  })
})

// A classic-BPF program: EPERM for read(2) (x86_64 and aarch64 numbers), allow the rest.
function denyRead(): Buffer {
  const LD_ABS = 0x20, JEQ = 0x15, RET = 0x06
  const arch = process.arch === 'arm64' ? 0xc00000b7 : 0xc000003e
  const nr = process.arch === 'arm64' ? 63 : 0
  const ins: [number, number, number, number][] = [
    [LD_ABS, 0, 0, 4], [JEQ, 0, 2, arch], [LD_ABS, 0, 0, 0], [JEQ, 1, 0, nr],
    [RET, 0, 0, 0x7fff0000], [RET, 0, 0, 0x00050000 | 1],
  ]
  const b = Buffer.alloc(ins.length * 8)
  ins.forEach(([code, jt, jf, k], i) => { b.writeUInt16LE(code, i * 8); b.writeUInt8(jt, i * 8 + 2); b.writeUInt8(jf, i * 8 + 3); b.writeUInt32LE(k >>> 0, i * 8 + 4) })
  return b
}

describe('v1 placement overlaps the child set-up', () => {
  it.runIf(pidsDir)('the child waits for it before the seccomp filter, so a filter that forbids read(2) cannot break the wait', async () => {
    // Static busybox's sleep reads nothing; had the child waited after loading the filter, its
    // read of the sync pipe would fail and it would exit 126 without running sleep.
    const child = await start({
      argv: ['/bin/busybox', 'sleep', '30'], cgroup: { legacy: [pidsDir!] }, noNewPrivileges: true, seccomp: { filter: denyRead() },
    })
    try {
      expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(child.pid))
      expect(fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).toBe('/bin/busybox\0sleep\x0030\0')
    } finally {
      await reap(child)
    }
  })

  it.runIf(pidsDir)('a step that fails while the parent places the child is reported as that step, and nothing is left', async () => {
    const err = await run({ argv: ['true'], cwd: '/no/such/dir/ctr', cgroup: { legacy: [pidsDir!] } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toContain('chdir /no/such/dir/ctr')
    expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
  })
})

describe('placement failures leave nothing behind', () => {
  it('a missing cgroup2 directory rejects before anything is cloned', async () => {
    const missing = path.join(unifiedRoot ?? '/sys/fs/cgroup', 'ctr-test-missing-cgroup')
    const err = await run({ argv: ['true'], cgroup: { unified: missing } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toContain(missing)
  })

  it('a v1 cgroup.procs the parent cannot write kills and reaps the waiting child', async () => {
    const missing = '/sys/fs/cgroup/pids/ctr-test-missing-cgroup'
    const err = await run({ argv: ['true'], cgroup: { legacy: [missing] } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toBe(`write ${missing}/cgroup.procs`)
    // the per-file hygiene check asserts that no child (or zombie) of ours is left
  })
})
