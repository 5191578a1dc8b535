/** The cgroup v2 backend: one directory in the unified hierarchy holds every controller. */
import path from 'node:path'
import type { CgroupBackend, CgroupEvent, CgroupPaths, Subscription } from '../backend.js'
import type { CgroupHost } from '../detect.js'
import { exists, readOptional, writeFresh, writeValue } from '../files.js'
import type { Limits } from '../limits.js'
import { parsePsi, type CgroupStats, type CgroupUsage } from '../stats.js'
import { mkdirBelow, mkdirLeaf, removeIfUnused, removeIfUnusedSync, removeTree, rmdirIfEmpty, signalEach } from '../tree.js'
import { addProcessV2, delegateControllers, freezeV2, isFrozenV2, killV2, procsOf, subscribeV2 } from './core.js'
import { applyCpu, cpuStats, readCpu } from './cpu.js'
import { applyIo, ioStats, readIo } from './io.js'
import { applyMemory, memoryStats, readMemory } from './memory.js'
import { applyPids, pidsStats, readPidsLimit } from './pids.js'

/** The controllers ctr asks to have delegated down to its cgroups. */
const WANTED = ['cpuset', 'cpu', 'io', 'memory', 'pids']

export class V2Backend implements CgroupBackend {
  readonly mode = 'unified' as const
  readonly paths: CgroupPaths
  private readonly base: string
  private readonly parentDir: string
  private readonly dir: string

  constructor(host: CgroupHost, parent: string, name: string) {
    const u = host.unified!
    this.base = path.resolve(u.mount, `.${u.own}`) // no trailing slash when own is /
    this.parentDir = path.join(this.base, parent)
    this.dir = path.join(this.parentDir, name)
    this.paths = { unified: this.dir, legacy: {} }
  }

  async create(): Promise<void> {
    // Each level hands the controllers on to the next, starting with our own cgroup.
    await delegateControllers(this.base, WANTED)
    await mkdirBelow(this.base, this.parentDir, (level) => delegateControllers(level, WANTED))
    await mkdirLeaf(this.dir)
  }

  exists(): Promise<boolean> {
    return exists(this.dir)
  }

  async applyLimits(l: Limits, fresh = false): Promise<void> {
    const write = fresh ? writeFresh : writeValue
    if (l.memory) await applyMemory(this.dir, l.memory, write)
    if (l.cpu) await applyCpu(this.dir, l.cpu, write)
    if (l.pids) await applyPids(this.dir, l.pids, write)
    if (l.io) await applyIo(this.dir, l.io)
  }

  async readLimits(): Promise<Limits> {
    const has = (f: string) => exists(path.join(this.dir, f))
    const out: Limits = {}
    if (await has('memory.max')) out.memory = await readMemory(this.dir)
    if (await has('cpu.max')) out.cpu = await readCpu(this.dir)
    if (await has('pids.max')) out.pids = await readPidsLimit(this.dir)
    if (await has('io.stat')) out.io = await readIo(this.dir)
    return out
  }

  addProcess(pid: number): Promise<void> {
    return addProcessV2(this.dir, pid)
  }

  processes(): Promise<number[]> {
    return procsOf(this.dir).then((p) => p.sort((a, b) => a - b))
  }

  async usage(): Promise<CgroupUsage> {
    const [peak, cpu] = await Promise.all([readOptional(path.join(this.dir, 'memory.peak')), cpuStats(this.dir)])
    return { ...(peak !== undefined ? { memoryPeak: Number(peak) } : {}), cpu: { usageUsec: cpu.usageUsec, userUsec: cpu.userUsec, systemUsec: cpu.systemUsec } }
  }

  async stats(): Promise<CgroupStats> {
    const [memory, cpu, pids, io, cpuP, memP, ioP] = await Promise.all([
      memoryStats(this.dir),
      cpuStats(this.dir),
      pidsStats(this.dir),
      ioStats(this.dir),
      readOptional(path.join(this.dir, 'cpu.pressure')),
      readOptional(path.join(this.dir, 'memory.pressure')),
      readOptional(path.join(this.dir, 'io.pressure')),
    ])
    const psi = { cpu: parsePsi(cpuP), memory: parsePsi(memP), io: parsePsi(ioP) }
    return { memory, cpu, pids, io, ...(psi.cpu || psi.memory || psi.io ? { psi: JSON.parse(JSON.stringify(psi)) } : {}) }
  }

  freeze(): Promise<void> {
    return freezeV2(this.dir, true, Date.now() + 5000)
  }

  thaw(): Promise<void> {
    return freezeV2(this.dir, false, Date.now() + 5000)
  }

  frozen(): Promise<boolean> {
    return isFrozenV2(this.dir)
  }

  async signalAll(signal: number): Promise<void> {
    // cgroup.kill reaches frozen tasks too.
    if (signal === 9 && (await killV2(this.dir))) return
    // Other signals (or no cgroup.kill): freeze so nothing forks past us, signal, and thaw —
    // unless the caller had frozen it (then the signals wait for their thaw), or for SIGKILL.
    const wasFrozen = await this.frozen()
    if (!wasFrozen) await this.freeze()
    try {
      signalEach(await this.processes(), signal)
    } finally {
      if (!wasFrozen || signal === 9) await this.thaw()
    }
  }

  subscribe(onEvent: (e: CgroupEvent) => void): Promise<Subscription> {
    return subscribeV2(this.dir, this.dir, onEvent)
  }

  async remove(deadline: number, keepParent = false): Promise<void> {
    await removeTree(this.dir, deadline)
    if (!keepParent) await this.removeParent()
  }

  async removeIfEmpty(keepParent: boolean): Promise<boolean> {
    if (!(await rmdirIfEmpty(this.dir))) return false
    if (!keepParent) await this.removeParent()
    return true
  }

  removeParent(): Promise<void> {
    return removeIfUnused(this.base, this.parentDir)
  }

  removeParentSync(): void {
    removeIfUnusedSync(this.base, this.parentDir)
  }
}
