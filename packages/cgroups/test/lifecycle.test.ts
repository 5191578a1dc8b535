/**
 * Creating, opening and destroying cgroups: where they go (only below `<own>/ctr` in each
 * hierarchy), names and limits that are refused before anything is created, an existing name,
 * destroy with live processes and nested cgroups, and idempotence.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { Cgroup, CgroupError } from '../src/index.js'
import {
  allDirs,
  cgroupError,
  dirsUnder,
  exitWithin,
  host,
  MiB,
  ownDirs,
  cleanup,
  createCgroup,
  startIn,
  uniqueName,
  waitFor,
  withCgroup,
} from './helpers/util.js'

afterEach(cleanup)

let runId = ''
beforeAll(() => {
  runId = inject('runId')
})

/** Every directory below our own cgroup in each hierarchy that belongs to this run or is a `ctr` dir. */
async function ourDirsOutsideCtr(): Promise<string[]> {
  const h = await host()
  const out: string[] = []
  for (const { own } of ownDirs(h)) {
    for (const d of dirsUnder(own, 6)) {
      const rel = path.relative(own, d)
      const base = path.basename(d)
      if (rel === 'ctr' || rel.startsWith('ctr/')) continue
      if (base === 'ctr' || base.includes(`ctr-test-${runId}-`)) out.push(d)
    }
  }
  return out
}

function listingUnderOwn(dirs: { own: string }[]): Set<string> {
  const s = new Set<string>()
  for (const { own } of dirs) for (const d of dirsUnder(own, 6)) s.add(d)
  return s
}

describe('Cgroup.create', () => {
  it('creates <own>/ctr/<name> in every hierarchy of a controller ctr uses (and the unified one)', async () => {
    const h = await host()
    const cg = await createCgroup()
    const name = cg.name
    try {
      expect(cg.name).toBe(name)
      expect(cg.mode).toBe(h.mode)
      for (const d of allDirs(cg)) expect(fs.statSync(d).isDirectory(), d).toBe(true)
      if (h.unified) {
        expect(cg.paths.unified).toBe(path.join(h.unified.mount, h.unified.own, 'ctr', name))
        expect(cg.placement.unified).toBe(cg.paths.unified)
      }
      if (h.mode === 'unified') {
        expect(Object.keys(cg.paths.legacy)).toEqual([])
      } else {
        // one directory per hierarchy that holds a controller ctr uses
        const V1: Record<string, string> = { memory: 'memory', cpu: 'cpu', cpuset: 'cpuset', pids: 'pids', blkio: 'io', freezer: 'freezer' }
        for (const l of h.legacy) {
          const used = l.controllers.filter((c) => V1[c] && h.controllers.includes(V1[c] as never))
          if (used.length === 0) continue
          const dir = path.join(l.mount, l.own, 'ctr', name)
          expect(Object.values(cg.paths.legacy), `a directory in ${l.mount}`).toContain(dir)
          expect(cg.placement.legacy, `placement in ${l.mount}`).toContain(dir)
        }
        for (const d of Object.values(cg.paths.legacy)) {
          const l = h.legacy.find((x) => d.startsWith(x.mount + '/'))
          expect(l, `${d} lies in a detected hierarchy`).toBeDefined()
          expect(d).toBe(path.join(l!.mount, l!.own, 'ctr', name))
        }
      }
    } finally {
      await cg.destroy()
    }
  })

  it('creates nothing outside <own>/ctr in any hierarchy', async () => {
    const h = await host()
    const before = listingUnderOwn(ownDirs(h))
    const cg = await createCgroup({ memory: { max: 64 * MiB }, pids: { max: 100 } })
    const name = cg.name
    let created: string[]
    try {
      created = [...listingUnderOwn(ownDirs(h))].filter((d) => !before.has(d))
    } finally {
      await cg.destroy()
    }
    // only `ctr` (the first time) and what lies below it, in each hierarchy
    for (const d of created) {
      const own = ownDirs(h).find((o) => d.startsWith(o.own + '/'))!
      const rel = path.relative(own.own, d)
      if (rel === 'ctr' || rel.startsWith('ctr/')) continue
      // a foreign test (another suite) may create its own directories meanwhile: only ours count
      if (path.basename(d) === 'ctr' || d.includes(`ctr-test-${runId}-`)) expect.fail(`created outside <own>/ctr: ${d}`)
    }
    expect(created.some((d) => d.endsWith('/ctr/' + name))).toBe(true)
    expect(await ourDirsOutsideCtr()).toEqual([])
  })

  it('an existing name is refused with ERR_CGROUP_EXISTS and the existing cgroup is left alone', async () => {
    await withCgroup({ pids: { max: 7 } }, async (cg) => {
      const err = await cgroupError(Cgroup.create(cg.name, { pids: { max: 9 } }))
      expect(err.code).toBe('ERR_CGROUP_EXISTS')
      for (const d of allDirs(cg)) expect(fs.existsSync(d)).toBe(true)
      expect((await cg.limits()).pids?.max).toBe(7)
    })
  })

  it.each(['../x', '', 'a/b', '.', '..', '/abs', 'x\0y', 'a\nb'])('the name %j is refused with ERR_CGROUP_INVALID and nothing is created', async (name) => {
    const h = await host()
    const before = listingUnderOwn(ownDirs(h))
    const err = await cgroupError(Cgroup.create(name))
    expect(err.code).toBe('ERR_CGROUP_INVALID')
    const created = [...listingUnderOwn(ownDirs(h))].filter((d) => !before.has(d))
    // `ctr` may have been created before by an earlier test, never by the refused call
    expect(created.filter((d) => !/\/ctr$/.test(d))).toEqual([])
    expect(await ourDirsOutsideCtr()).toEqual([])
  })

  it.each<[string, unknown]>([
    ['a negative memory max', { memory: { max: -1 } }],
    ['a non-integer memory max', { memory: { max: 1.5 } }],
    ['a NaN memory max', { memory: { max: Number.NaN } }],
    ['a negative swap', { memory: { max: 64 * MiB, swap: -4096 } }],
    ['a negative cpu quota', { cpu: { quota: -5 } }],
    ['a non-integer cpu period', { cpu: { period: 1000.5 } }],
    ['a cpu weight of 0', { cpu: { weight: 0 } }],
    ['a cpu weight above 10000', { cpu: { weight: 10001 } }],
    ['cpu shares of 1', { cpu: { shares: 1 } }],
    ['cpus "abc"', { cpu: { cpus: 'abc' } }],
    ['mems "x-y"', { cpu: { mems: 'x-y' } }],
    ['a negative pids max', { pids: { max: -1 } }],
    ['a non-integer pids max', { pids: { max: 2.5 } }],
    ['a string memory max other than "max"', { memory: { max: '64m' } }],
  ])('%s is refused with ERR_CGROUP_INVALID and nothing is created', async (_label, limits) => {
    const h = await host()
    const name = uniqueName()
    const err = await cgroupError(Cgroup.create(name, limits as never))
    expect(err.code).toBe('ERR_CGROUP_INVALID')
    for (const { own } of ownDirs(h)) expect(fs.existsSync(path.join(own, 'ctr', name)), `${own}/ctr/${name}`).toBe(false)
  })

  it('invalid limits given to update() are refused and change nothing', async () => {
    await withCgroup({ pids: { max: 10 }, memory: { max: 64 * MiB } }, async (cg) => {
      expect((await cgroupError(cg.update({ pids: { max: -3 } }))).code).toBe('ERR_CGROUP_INVALID')
      expect((await cgroupError(cg.update({ cpu: { cpus: 'abc' } }))).code).toBe('ERR_CGROUP_INVALID')
      expect((await cgroupError(cg.update({ memory: { max: 0.5 } }))).code).toBe('ERR_CGROUP_INVALID')
      const l = await cg.limits()
      expect(l.pids?.max).toBe(10)
      expect(l.memory?.max).toBe(64 * MiB)
    })
  })

  it('a parent option puts the cgroup below <own>/<parent> instead of <own>/ctr', async () => {
    const h = await host()
    const parent = uniqueName()
    const cg = await createCgroup(undefined, { parent })
    const name = cg.name
    try {
      for (const d of allDirs(cg)) {
        const own = ownDirs(h).find((o) => d.startsWith(o.own + '/'))
        expect(own, d).toBeDefined()
        expect(d).toBe(path.join(own!.own, parent, name))
      }
    } finally {
      await cg.destroy()
      // the parent directories were made for this test: remove them
      for (const { own } of ownDirs(h)) {
        const p = path.join(own, parent)
        if (fs.existsSync(p)) fs.rmdirSync(p)
      }
    }
  })

  it('eight cgroups made at once below a new parent can each take a process (every cpuset level is filled first)', async () => {
    const h = await host()
    const parent = uniqueName()
    const cgs = await Promise.all(Array.from({ length: 8 }, () => createCgroup({ pids: { max: 8 } }, { parent, host: h })))
    const parentDirs = [...new Set(cgs.flatMap((cg) => allDirs(cg).map((d) => path.dirname(d))))]
    try {
      const children = await Promise.all(cgs.map((cg) => startIn(cg, ['sleep', '30'])))
      for (const [i, cg] of cgs.entries()) expect(await cg.processes()).toEqual([children[i]!.pid])
      // The cpuset level of ours copies its cpus and mems into each new child at mkdir.
      const cpuset = cgs[0]!.paths.legacy['cpuset']
      if (cpuset) {
        expect(fs.readFileSync(path.join(path.dirname(cpuset), 'cgroup.clone_children'), 'utf8').trim()).toBe('1')
        expect(fs.readFileSync(path.join(cpuset, 'cpuset.cpus'), 'utf8').trim()).toBe(fs.readFileSync(path.join(path.dirname(cpuset), 'cpuset.cpus'), 'utf8').trim())
      }
    } finally {
      for (const cg of cgs) await cg.destroy()
      for (const p of parentDirs) if (fs.existsSync(p)) fs.rmdirSync(p)
    }
  })

  it('a kept cpuset parent without clone_children (made by someone else, or an older version) is filled and fixed at the next create', async () => {
    const h = await host()
    const parent = uniqueName()
    const a = await createCgroup(undefined, { parent, host: h })
    const cpuset = a.paths.legacy['cpuset']
    const parentDirs = allDirs(a).map((d) => path.dirname(d))
    let b: Cgroup | undefined
    try {
      if (!cpuset) return
      await a.destroy({ keepParent: true })
      const level = path.dirname(cpuset)
      fs.writeFileSync(path.join(level, 'cgroup.clone_children'), '0')
      b = await createCgroup(undefined, { parent, host: h })
      const leaf = b.paths.legacy['cpuset']!
      expect(fs.readFileSync(path.join(leaf, 'cpuset.cpus'), 'utf8').trim()).toBe(fs.readFileSync(path.join(level, 'cpuset.cpus'), 'utf8').trim())
      expect(fs.readFileSync(path.join(leaf, 'cpuset.mems'), 'utf8').trim()).not.toBe('')
      expect(fs.readFileSync(path.join(level, 'cgroup.clone_children'), 'utf8').trim()).toBe('1')
      const child = await startIn(b, ['sleep', '30'])
      expect(await b.processes()).toEqual([child.pid])
    } finally {
      await b?.destroy()
      await a.destroy()
      for (const p of parentDirs) if (fs.existsSync(p)) fs.rmdirSync(p)
    }
  })

  it('removeParentSync removes the empty parent levels without awaiting (for an exit handler), and keeps a level in use', async () => {
    const h = await host()
    const parent = `${uniqueName()}/inner`
    const a = await createCgroup(undefined, { parent, host: h })
    const inner = allDirs(a).map((d) => path.dirname(d))
    const outer = inner.map((d) => path.dirname(d))
    try {
      Cgroup.removeParentSync({ parent, host: h })
      for (const p of inner) expect(fs.existsSync(p), p).toBe(true)
      await a.destroy({ keepParent: true })
      Cgroup.removeParentSync({ parent, host: h })
      for (const p of [...inner, ...outer]) expect(fs.existsSync(p), p).toBe(false)
    } finally {
      await a.destroy()
      for (const p of [...inner, ...outer]) if (fs.existsSync(p)) fs.rmdirSync(p)
    }
  })

  it('destroy({ keepParent }) keeps the empty parent in every hierarchy; removeParent() then removes it, and only when empty', async () => {
    const h = await host()
    const parent = uniqueName()
    const a = await createCgroup(undefined, { parent })
    const parentDirs = allDirs(a).map((d) => path.dirname(d))
    expect(parentDirs.every((p) => path.basename(p) === parent)).toBe(true)
    const b = await createCgroup(undefined, { parent })
    try {
      await a.destroy({ keepParent: true })
      for (const d of allDirs(a)) expect(fs.existsSync(d), d).toBe(false)
      for (const p of parentDirs) expect(fs.existsSync(p), p).toBe(true)
      // b still lives below it: removeParent keeps it
      await Cgroup.removeParent({ parent, host: h })
      for (const p of parentDirs) expect(fs.existsSync(p), p).toBe(true)
      await b.destroy({ keepParent: true })
      for (const p of parentDirs) expect(fs.existsSync(p), p).toBe(true)
      await Cgroup.removeParent({ parent, host: h })
      for (const p of parentDirs) expect(fs.existsSync(p), p).toBe(false)
    } finally {
      await a.destroy()
      await b.destroy()
      for (const p of parentDirs) if (fs.existsSync(p)) fs.rmdirSync(p)
    }
  })
})

describe('Cgroup.open', () => {
  it('opens an existing cgroup with the same paths, and sees its limits and processes', async () => {
    await withCgroup({ pids: { max: 12 } }, async (cg) => {
      const child = await startIn(cg, ['sleep', '30'])
      const again = await Cgroup.open(cg.name)
      expect(again.paths).toEqual(cg.paths)
      expect(again.placement).toEqual(cg.placement)
      expect((await again.limits()).pids?.max).toBe(12)
      expect(await again.processes()).toEqual([child.pid])
    })
  })

  it('a name that does not exist is ERR_CGROUP_NOT_FOUND', async () => {
    const err = await cgroupError(Cgroup.open(uniqueName()))
    expect(err.code).toBe('ERR_CGROUP_NOT_FOUND')
  })

  it('an invalid name is ERR_CGROUP_INVALID', async () => {
    expect((await cgroupError(Cgroup.open('../x'))).code).toBe('ERR_CGROUP_INVALID')
  })
})

describe('destroy', () => {
  it('removes the directory in every hierarchy', async () => {
    const cg = await createCgroup({ memory: { max: 64 * MiB } })
    const dirs = allDirs(cg)
    expect(dirs.length).toBeGreaterThan(0)
    await cg.destroy()
    for (const d of dirs) expect(fs.existsSync(d), d).toBe(false)
  })

  it('is idempotent: a second destroy (and one of a reopened handle) resolves', async () => {
    const cg = await createCgroup()
    const other = await Cgroup.open(cg.name)
    await cg.destroy()
    await cg.destroy()
    await other.destroy()
    for (const d of allDirs(cg)) expect(fs.existsSync(d)).toBe(false)
  })

  it('kills the live processes in it (children and grandchildren) and then removes it', async () => {
    const cg = await createCgroup()
    const dirs = allDirs(cg)
    const a = await startIn(cg, ['sleep', '30'])
    const b = await startIn(cg, ['sh', '-c', 'sleep 30 & sleep 30 & wait'])
    expect(await waitFor(async () => (await cg.processes()).length === 4)).toBe(true)
    await cg.destroy()
    expect(await exitWithin(a)).toEqual({ code: null, signal: 'SIGKILL' })
    expect(await exitWithin(b)).toEqual({ code: null, signal: 'SIGKILL' })
    for (const d of dirs) expect(fs.existsSync(d), d).toBe(false)
  })

  it('removes cgroups nested inside it first', async () => {
    const cg = await createCgroup()
    const dirs = allDirs(cg)
    for (const d of dirs) fs.mkdirSync(path.join(d, 'sub', 'deeper'), { recursive: true })
    await cg.destroy()
    for (const d of dirs) expect(fs.existsSync(d), d).toBe(false)
  })

  it('a destroyed cgroup is not found by open', async () => {
    const cg = await createCgroup()
    await cg.destroy()
    expect((await cgroupError(Cgroup.open(cg.name))).code).toBe('ERR_CGROUP_NOT_FOUND')
  })
})

describe('CgroupError', () => {
  it('is an Error with a code and a message naming the problem', async () => {
    const err = await cgroupError(Cgroup.create('a/b'))
    expect(err).toBeInstanceOf(Error)
    expect(err).toBeInstanceOf(CgroupError)
    expect(err.message).toMatch(/a\/b/)
  })
})
