/**
 * detect(): the mode (statfs of /sys/fs/cgroup and the cgroup2 mount), the hierarchies and
 * their controllers, and our own cgroup in each, checked against /proc/self/mountinfo and
 * /proc/self/cgroup read independently here.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { detect } from '../src/index.js'
import { cgroupMounts, cgroupPathIn, parseProcCgroup } from './helpers/util.js'

const CGROUP2_SUPER_MAGIC = 0x63677270
const rootIsCgroup2 = Number(fs.statfsSync('/sys/fs/cgroup').type) === CGROUP2_SUPER_MAGIC
const mounts = cgroupMounts()
const v1Mounts = mounts.filter((m) => m.fstype === 'cgroup')
const v2Mount = mounts.find((m) => m.fstype === 'cgroup2')
const expectedMode = rootIsCgroup2 ? 'unified' : v2Mount ? 'hybrid' : 'legacy'
const V1_TO_CTR: Record<string, string> = { memory: 'memory', cpu: 'cpu', cpuset: 'cpuset', pids: 'pids', blkio: 'io', freezer: 'freezer' }

describe('detect()', () => {
  it(`finds the mode of this host (${expectedMode})`, async () => {
    const h = await detect()
    expect(h.mode).toBe(expectedMode)
  })

  // CTR_EXPECT_CGROUP_MODE=hybrid on the development host; inside scripts/vm-test (CTR_VM=1) pure v2
  const wanted = process.env.CTR_EXPECT_CGROUP_MODE ?? (process.env.CTR_VM === '1' ? 'unified' : undefined)
  it.runIf(wanted)(`is what this machine is said to be (${wanted})`, async () => {
    expect((await detect()).mode).toBe(wanted)
  })

  it.runIf(expectedMode !== 'unified')('lists every v1 hierarchy with its controllers and mount (name=systemd left out)', async () => {
    const h = await detect()
    const withControllers = v1Mounts.filter((m) => m.superOptions.some((o) => o in V1_TO_CTR || o === 'cpuacct'))
    for (const m of withControllers) {
      const hier = h.legacy.find((l) => l.mount === m.mountPoint)
      expect(hier, `hierarchy mounted at ${m.mountPoint}`).toBeDefined()
      for (const c of m.superOptions.filter((o) => o in V1_TO_CTR)) expect(hier!.controllers).toContain(c)
    }
    for (const l of h.legacy) expect(l.controllers.some((c) => c.startsWith('name='))).toBe(false)
  })

  it.runIf(expectedMode !== 'unified')('the controllers ctr can use are those of the v1 hierarchies', async () => {
    const h = await detect()
    const expected = new Set<string>()
    for (const m of v1Mounts) for (const o of m.superOptions) if (V1_TO_CTR[o]) expected.add(V1_TO_CTR[o]!)
    expect([...h.controllers].sort()).toEqual([...expected].sort())
  })

  it.runIf(expectedMode === 'hybrid')('hybrid: the cgroup2 hierarchy is reported beside the v1 ones', async () => {
    const h = await detect()
    expect(h.unified).toBeDefined()
    expect(h.unified!.mount).toBe(v2Mount!.mountPoint)
    expect(h.legacy.length).toBeGreaterThan(0)
    // on this kind of host the cgroup2 hierarchy has no controller ctr uses: they are all on v1
    for (const c of ['memory', 'cpu', 'pids', 'freezer']) {
      if (v1Mounts.some((m) => m.superOptions.includes(c))) expect(h.controllers).toContain(c)
    }
  })

  it.runIf(expectedMode === 'unified')('unified: one cgroup2 hierarchy at /sys/fs/cgroup, no v1 ones, its controllers listed', async () => {
    const h = await detect()
    expect(h.unified?.mount).toBe('/sys/fs/cgroup')
    expect(h.legacy).toEqual([])
    const own = path.join('/sys/fs/cgroup', h.unified!.own)
    const available = fs.readFileSync(path.join(own, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean)
    expect([...h.unified!.controllers].sort()).toEqual([...available].sort())
    for (const c of ['memory', 'cpu', 'pids']) if (available.includes(c)) expect(h.controllers).toContain(c)
    expect(h.controllers).toContain('freezer') // cgroup.freeze is core on v2
  })

  it('our own cgroup in each hierarchy is what /proc/self/cgroup says', async () => {
    const h = await detect()
    const self = fs.readFileSync('/proc/self/cgroup', 'utf8')
    for (const l of h.legacy) {
      expect(l.own, `own cgroup in ${l.mount}`).toBe(cgroupPathIn(self, l.controllers[0]!))
      expect(fs.statSync(path.join(l.mount, l.own)).isDirectory()).toBe(true)
    }
    if (h.unified) {
      expect(h.unified.own).toBe(cgroupPathIn(self, null))
      expect(fs.statSync(path.join(h.unified.mount, h.unified.own)).isDirectory()).toBe(true)
    }
    // every v1 hierarchy with a controller of /proc/self/cgroup is listed
    for (const line of parseProcCgroup(self)) {
      if (line.controllers.some((c) => c in V1_TO_CTR) && expectedMode !== 'unified') {
        expect(h.legacy.some((l) => l.controllers.includes(line.controllers.find((c) => c in V1_TO_CTR)!))).toBe(true)
      }
    }
  })

  it('is stable: two calls agree', async () => {
    expect(await detect()).toEqual(await detect())
  })
})
