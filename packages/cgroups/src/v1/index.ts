/**
 * The cgroup v1 backend: one directory per hierarchy (memory, cpu+cpuacct, cpuset, pids,
 * blkio, freezer). On a hybrid host it also keeps a directory in the controller-less unified
 * hierarchy, which gives clone-into-cgroup placement, populated/empty events and cgroup.kill.
 */
import path from 'node:path'
import type { CgroupBackend, CgroupEvent, CgroupPaths, Subscription } from '../backend.js'
import type { CgroupHost, CgroupMode } from '../detect.js'
import { CgroupError } from '../errors.js'
import { exists, readOptional, readPids, writeFresh, writeValue } from '../files.js'
import type { Limits } from '../limits.js'
import type { CgroupStats, CgroupUsage } from '../stats.js'
import { mkdirBelow, mkdirLeaf, mkdirLeaves, removeIfUnused, removeIfUnusedSync, removeTree, rmdirsIfEmpty, signalEach } from '../tree.js'
import { freezeV2, killV2, subscribeV2 } from '../v2/core.js'
import { applyBlkio, blkioStats, readBlkio } from './blkio.js'
import { applyCpu, cpuStats, cpuUsage, readCpu } from './cpu.js'
import { applyCpuset, cpusetFilled, inheritCpuset, prepareCpusetParent, readCpuset } from './cpuset.js'
import { freezeV1, isFrozenV1 } from './freezer.js'
import { applyMemory, memoryStats, readMemory } from './memory.js'
import { subscribeOom } from './oom.js'
import { applyPids, pidsStats, readPidsLimit } from './pids.js'

/** The v1 controllers ctr creates cgroups in. */
const USED = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio', 'freezer']

interface Place {
  base: string
  parentDir: string
  dir: string
  controllers: string[]
}

export class V1Backend implements CgroupBackend {
  readonly mode: CgroupMode
  readonly paths: CgroupPaths
  private readonly places: Place[]
  private readonly unified: Place | undefined

  constructor(host: CgroupHost, parent: string, name: string) {
    this.mode = host.mode
    const place = (mount: string, own: string, controllers: string[]): Place => {
      const base = path.resolve(mount, `.${own}`) // no trailing slash when own is /
      return { base, parentDir: path.join(base, parent), dir: path.join(base, parent, name), controllers }
    }
    this.places = host.legacy.filter((h) => h.controllers.some((c) => USED.includes(c))).map((h) => place(h.mount, h.own, h.controllers))
    this.unified = host.mode === 'hybrid' && host.unified ? place(host.unified.mount, host.unified.own, []) : undefined
    const legacy: Record<string, string> = {}
    for (const p of this.places) for (const c of p.controllers) if (USED.includes(c)) legacy[c] = p.dir
    this.paths = { ...(this.unified ? { unified: this.unified.dir } : {}), legacy }
  }

  private dirOf(controller: string): string | undefined {
    return this.paths.legacy[controller]
  }

  private need(controller: string, what: string): string {
    const dir = this.dirOf(controller)
    if (!dir) {
      throw new CgroupError('ERR_CGROUP_CONTROLLER_MISSING', `${what} needs the ${controller} controller, which is not mounted`, {
        hint: `mount it (mount -t cgroup -o ${controller} cgroup /sys/fs/cgroup/${controller}) or enable it in the kernel`,
      })
    }
    return dir
  }

  private allPlaces(): Place[] {
    return this.unified ? [...this.places, this.unified] : this.places
  }

  async create(): Promise<void> {
    // One directory per hierarchy, independent of each other. Usually every parent is there
    // already (kept between containers): then all the leaves are made in one thread-pool job.
    // A hierarchy whose leaf could not be made that way (its parent missing) takes the slow
    // path below on its own. On any failure the ones made go again.
    const places = this.allPlaces()
    const first = await mkdirLeaves(places.map((p) => p.dir))
    const results = await Promise.allSettled(
      places.map(async (p, i) => {
        const isCpuset = p.controllers.includes('cpuset')
        const err = first[i]
        if (err && err.errnoCode !== 'ENOENT') throw err
        if (err) {
          // The parent is missing: make its levels (a cpuset level gets its cpus and mems
          // filled, and clone_children, before anything below it), then the leaf.
          await mkdirBelow(p.base, p.parentDir, isCpuset ? prepareCpusetParent : undefined)
          await mkdirLeaf(p.dir)
        }
        try {
          // With clone_children on the parent, the kernel filled the leaf. An empty one means
          // the parent was made a moment ago by another create that has not filled it yet:
          // fill each level of ours, then the leaf.
          if (isCpuset && !(await cpusetFilled(p.dir))) {
            await mkdirBelow(p.base, p.parentDir, prepareCpusetParent)
            await inheritCpuset(p.dir)
          }
        } catch (e) {
          await removeTree(p.dir, Date.now() + 1000).catch(() => undefined)
          throw e
        }
        return p.dir
      }),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) {
      const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      await Promise.all(made.map((dir) => removeTree(dir, Date.now() + 1000).catch(() => undefined)))
      throw failed.reason
    }
  }

  async exists(): Promise<boolean> {
    return (await Promise.all(this.allPlaces().map((p) => exists(p.dir)))).some(Boolean)
  }

  async applyLimits(l: Limits, fresh = false): Promise<void> {
    const write = fresh ? writeFresh : writeValue
    if (l.memory) await applyMemory(this.need('memory', 'a memory limit'), l.memory, write)
    if (l.cpu) {
      const { cpus, mems, ...rest } = l.cpu
      if (Object.values(rest).some((v) => v !== undefined)) await applyCpu(this.need('cpu', 'a cpu limit'), rest, write)
      if (cpus !== undefined || mems !== undefined) await applyCpuset(this.need('cpuset', 'a cpuset'), { cpus, mems })
    }
    if (l.pids) await applyPids(this.need('pids', 'a pids limit'), l.pids, write)
    if (l.io) await applyBlkio(this.need('blkio', 'an io limit'), l.io)
  }

  async readLimits(): Promise<Limits> {
    const out: Limits = {}
    const memory = this.dirOf('memory')
    const cpu = this.dirOf('cpu')
    const cpuset = this.dirOf('cpuset')
    const pids = this.dirOf('pids')
    const blkio = this.dirOf('blkio')
    if (memory) out.memory = await readMemory(memory)
    if (cpu || cpuset) out.cpu = { ...(cpu ? await readCpu(cpu) : {}), ...(cpuset ? await readCpuset(cpuset) : {}) }
    if (pids) out.pids = await readPidsLimit(pids)
    if (blkio) out.io = await readBlkio(blkio)
    return out
  }

  async addProcess(pid: number): Promise<void> {
    for (const p of this.allPlaces()) await writeValue(path.join(p.dir, 'cgroup.procs'), String(pid))
  }

  async processes(): Promise<number[]> {
    const lists = await Promise.all(
      this.allPlaces().map(async (p) => {
        try {
          return await readPids(path.join(p.dir, 'cgroup.procs'))
        } catch (err) {
          if ((err as CgroupError).code !== 'ERR_CGROUP_NOT_FOUND') throw err
          return []
        }
      }),
    )
    return [...new Set(lists.flat())].sort((a, b) => a - b)
  }

  async stats(): Promise<CgroupStats> {
    const memory = this.need('memory', 'memory statistics')
    const pids = this.need('pids', 'pids statistics')
    const blkio = this.dirOf('blkio')
    const [m, cpu, p, io] = await Promise.all([
      memoryStats(memory),
      cpuStats(this.dirOf('cpu'), this.dirOf('cpuacct')),
      pidsStats(pids),
      blkio ? blkioStats(blkio) : Promise.resolve([]),
    ])
    return { memory: m, cpu, pids: p, io }
  }

  async usage(): Promise<CgroupUsage> {
    const memory = this.dirOf('memory')
    const peak = memory ? await readOptional(path.join(memory, 'memory.max_usage_in_bytes')) : undefined
    const cpu = await cpuUsage(this.dirOf('cpuacct'))
    return { ...(peak !== undefined ? { memoryPeak: Number(peak) } : {}), cpu }
  }

  freeze(): Promise<void> {
    return freezeV1(this.need('freezer', 'freezing'), true, Date.now() + 5000)
  }

  thaw(): Promise<void> {
    return freezeV1(this.need('freezer', 'thawing'), false, Date.now() + 5000)
  }

  frozen(): Promise<boolean> {
    return isFrozenV1(this.need('freezer', 'the freezer state'))
  }

  async signalAll(signal: number): Promise<void> {
    const freezer = this.dirOf('freezer')
    const freeze = (on: boolean) =>
      freezer ? freezeV1(freezer, on, Date.now() + 5000) : this.unified ? freezeV2(this.unified.dir, on, Date.now() + 5000) : Promise.resolve()
    const wasFrozen = freezer ? await isFrozenV1(freezer) : false
    // Hybrid: the unified hierarchy's cgroup.kill reaches every process at once — but tasks
    // the v1 freezer holds only die once thawed.
    if (signal === 9 && this.unified && (await killV2(this.unified.dir))) {
      if (wasFrozen) await freeze(false)
      return
    }
    // Frozen, nothing can fork between our listing and our signals. A cgroup the caller froze
    // stays frozen (its signals wait), except for SIGKILL, which must take effect.
    if (!wasFrozen) await freeze(true)
    try {
      signalEach(await this.processes(), signal)
    } finally {
      if (!wasFrozen || signal === 9) await freeze(false)
    }
  }

  async subscribe(onEvent: (e: CgroupEvent) => void): Promise<Subscription> {
    const subs: Subscription[] = []
    try {
      const memory = this.dirOf('memory')
      if (memory) subs.push(await subscribeOom(memory, onEvent))
      if (this.unified) subs.push(await subscribeV2(this.unified.dir, undefined, onEvent))
    } catch (err) {
      for (const s of subs) s.close()
      throw err
    }
    return { close: () => subs.forEach((s) => s.close()) }
  }

  async remove(deadline: number, keepParent = false): Promise<void> {
    await Promise.all(this.allPlaces().map((p) => removeTree(p.dir, deadline)))
    if (!keepParent) await this.removeParent()
  }

  async removeIfEmpty(keepParent: boolean): Promise<boolean> {
    const gone = await rmdirsIfEmpty(this.allPlaces().map((p) => p.dir))
    if (gone.includes(false)) return false
    if (!keepParent) await this.removeParent()
    return true
  }

  async removeParent(): Promise<void> {
    await Promise.all(this.allPlaces().map((p) => removeIfUnused(p.base, p.parentDir)))
  }

  removeParentSync(): void {
    for (const p of this.allPlaces()) removeIfUnusedSync(p.base, p.parentDir)
  }
}

