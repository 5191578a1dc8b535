/**
 * Placement: the child is in its cgroups before it execs — cloned straight into a cgroup2
 * directory (CLONE_INTO_CGROUP), or, on v1, joining each hierarchy itself through a `tasks`
 * file the parent opened — and the legacy clone() path (no clone3) places it too. Cgroups are
 * created only below this process's own cgroup and removed afterwards.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SpawnError } from '../src/index.js'
import { run, runEnter, start, reap } from './helpers/util.js'

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
// A v1 cpuset cgroup whose cpuset.cpus is left empty: the kernel refuses to attach to it.
const cpusetOwn = ownCgroup('cpuset')
const cpusetRoot = cpusetOwn !== undefined && fs.existsSync('/sys/fs/cgroup/cpuset') ? path.join('/sys/fs/cgroup/cpuset', cpusetOwn) : undefined
const emptyCpusetDir = cpusetRoot && fs.readFileSync(path.join(cpusetRoot, 'cgroup.clone_children'), 'utf8').trim() === '0'
  ? path.join(cpusetRoot, name) : undefined

beforeAll(() => {
  for (const dir of [unifiedDir, pidsDir, emptyCpusetDir]) if (dir) fs.mkdirSync(dir)
})

afterAll(() => {
  for (const dir of [unifiedDir, pidsDir, emptyCpusetDir]) if (dir && fs.existsSync(dir)) fs.rmdirSync(dir)
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

describe('v1: the child joins its cgroups itself', () => {
  it.runIf(pidsDir)('inside a new user namespace too (the kernel checks the credentials of the parent that opened tasks)', async () => {
    const r = await run({ argv: ['cat', '/proc/self/cgroup'], namespaces: ['user'], cgroup: { legacy: [pidsDir!] } })
    expect(r.code).toBe(0)
    expect(cgroupOf(r.stdout, 'pids')).toBe(path.join(pidsOwn!, name))
  })

  it.runIf(pidsDir)('a program entered into a pid namespace (a two-stage spawn) is born inside the cgroup', async () => {
    const holder = await start({ argv: ['sleep', '30'], namespaces: ['pid', 'mnt'] })
    try {
      const r = await runEnter(holder.pid, { argv: ['cat', '/proc/self/cgroup'], namespaces: ['pid'], cgroup: { legacy: [pidsDir!] } })
      expect(r.code).toBe(0)
      expect(cgroupOf(r.stdout, 'pids')).toBe(path.join(pidsOwn!, name))
    } finally {
      await reap(holder)
    }
    expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
  })

  it.runIf(pidsDir)('a step that fails after the child joined is reported as that step, and the cgroup is left empty', async () => {
    const err = await run({ argv: ['true'], cwd: '/no/such/dir/ctr', cgroup: { legacy: [pidsDir!] } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toContain('chdir /no/such/dir/ctr')
    expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
  })

  it.runIf(emptyCpusetDir && pidsDir)('a cgroup the kernel refuses to join is named with its errno, and the child is reaped', async () => {
    // The pids cgroup comes first and is joined; the cpuset one has no cpus, so attaching to
    // it fails with ENOSPC.
    const err = await run({ argv: ['true'], cgroup: { legacy: [pidsDir!, emptyCpusetDir!] } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOSPC')
    expect((err as SpawnError).step).toBe(`join cgroup ${emptyCpusetDir}`)
    expect((err as SpawnError).path).toBe(`${emptyCpusetDir}/tasks`)
    expect(fs.readFileSync(path.join(pidsDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
    expect(fs.readFileSync(path.join(emptyCpusetDir!, 'cgroup.procs'), 'utf8').trim()).toBe('')
    // the per-file hygiene check asserts that no child (or zombie) of ours is left
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

  it('a missing v1 cgroup rejects before anything is cloned', async () => {
    const missing = '/sys/fs/cgroup/pids/ctr-test-missing-cgroup'
    const err = await run({ argv: ['true'], cgroup: { legacy: [missing] } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toBe(`open ${missing}/tasks`)
    // the per-file hygiene check asserts that no child (or zombie) of ours is left
  })
})
