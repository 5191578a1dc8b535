import { EventEmitter } from 'node:events'
import os from 'node:os'
import type { CgroupBackend, CgroupEvent, CgroupPaths } from './backend.js'
import { detect, type CgroupHost, type CgroupMode } from './detect.js'
import { CgroupError } from './errors.js'
import { parseLimits, type Limits } from './limits.js'
import type { CgroupStats, CgroupUsage } from './stats.js'
import { waitUntil } from './tree.js'
import { V1Backend } from './v1/index.js'
import { V2Backend } from './v2/index.js'

/** Where a cgroup goes. */
export interface CgroupOptions {
  /**
   * Path below our own cgroup that holds ctr's cgroups (default `ctr`), so containers stay
   * inside whatever already accounts for the calling service.
   */
  parent?: string
  /** A {@link detect} result to reuse (detection reads /proc on every call otherwise). */
  host?: CgroupHost
}

/** The `cgroup` option of `@ctr/namespaces`' spawn: where a child goes before it execs. */
export interface CgroupPlacement {
  unified?: string
  legacy?: string[]
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const PARENT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(\/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}){0,7}$/

function checkNames(name: string, parent: string): void {
  if (!NAME.test(name) || name.startsWith('cgroup.')) {
    throw new CgroupError('ERR_CGROUP_INVALID', `invalid cgroup name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-', starting with a letter or digit`)
  }
  if (!PARENT.test(parent) || parent.split('/').some((p) => p.startsWith('cgroup.'))) {
    throw new CgroupError('ERR_CGROUP_INVALID', `invalid parent ${JSON.stringify(parent)}: a relative path of plain names`)
  }
}

function backendFor(host: CgroupHost, parent: string, name: string): CgroupBackend {
  return host.mode === 'unified' ? new V2Backend(host, parent, name) : new V1Backend(host, parent, name)
}

function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') return signal
  const n = (os.constants.signals as Record<string, number>)[signal]
  if (n === undefined) throw new CgroupError('ERR_CGROUP_INVALID', `unknown signal ${signal}`)
  return n
}

/** Emits `'event'` for every {@link CgroupEvent}, and also `'oom'`, `'oom_kill'`, `'populated'`, `'empty'`. */
export class CgroupWatcher extends EventEmitter {
  /** @internal */
  closeFn: (() => void) | undefined
  private closed = false
  /** Stops watching. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.closeFn?.()
  }
}

/**
 * A cgroup of ours, on whatever cgroup version the host runs. Created below our own cgroup
 * (`<own>/ctr/<name>` by default) in every hierarchy it needs.
 *
 * @example
 * ```ts
 * import { Cgroup } from '@ctr/cgroups'
 * import { spawn } from '@ctr/namespaces'
 * const cg = await Cgroup.create('job-1', { memory: { max: 64 * 2 ** 20 }, pids: { max: 32 } })
 * const child = await spawn({ argv: ['sh', '-c', 'make'], cgroup: cg.placement })
 * for await (const ev of cg.events()) if (ev.type === 'oom_kill') console.log('out of memory')
 * console.log((await cg.stats()).memory.peak)
 * await cg.destroy()
 * ```
 */
export class Cgroup {
  private constructor(
    readonly name: string,
    readonly mode: CgroupMode,
    private readonly backend: CgroupBackend,
  ) {}

  /**
   * Creates a cgroup and applies `limits`. Fails with ERR_CGROUP_EXISTS when it exists, and
   * leaves nothing behind on any failure (a limit the kernel refuses removes the cgroup again).
   */
  static async create(name: string, limits?: Limits, options: CgroupOptions = {}): Promise<Cgroup> {
    const parent = options.parent ?? 'ctr'
    checkNames(name, parent)
    const parsed = parseLimits(limits)
    const host = options.host ?? (await detect())
    const backend = backendFor(host, parent, name)
    // Another cgroup's destroy may remove the shared parent between our mkdirs (ENOENT), or
    // while we read its files (ENODEV: the directory is being deleted): try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await backend.create()
        break
      } catch (err) {
        const code = (err as CgroupError).errnoCode
        if (attempt < 6 && (code === 'ENOENT' || code === 'ENODEV')) continue
        throw err
      }
    }
    const cg = new Cgroup(name, host.mode, backend)
    try {
      await backend.applyLimits(parsed, true)
    } catch (err) {
      await backend.remove(Date.now() + 2000).catch(() => undefined)
      throw err
    }
    return cg
  }

  /**
   * The directories {@link Cgroup.create} would make for this name, without touching the
   * system: for records written before the cgroup exists (a crash then still finds it).
   */
  static pathsOf(name: string, options: CgroupOptions & { host: CgroupHost }): CgroupPaths {
    const parent = options.parent ?? 'ctr'
    checkNames(name, parent)
    return backendFor(options.host, parent, name).paths
  }

  /** An existing cgroup of ours (ERR_CGROUP_NOT_FOUND if it does not exist). */
  static async open(name: string, options: CgroupOptions = {}): Promise<Cgroup> {
    const parent = options.parent ?? 'ctr'
    checkNames(name, parent)
    const host = options.host ?? (await detect())
    const backend = backendFor(host, parent, name)
    if (!(await backend.exists())) throw new CgroupError('ERR_CGROUP_NOT_FOUND', `no cgroup ${parent}/${name}`)
    return new Cgroup(name, host.mode, backend)
  }

  /** Absolute directories of this cgroup in each hierarchy. */
  get paths(): CgroupPaths {
    return this.backend.paths
  }

  /** Pass as `cgroup` to `@ctr/namespaces`' spawn: the child is in this cgroup before it execs. */
  get placement(): CgroupPlacement {
    const p = this.backend.paths
    const legacy = [...new Set(Object.values(p.legacy))]
    return { ...(p.unified ? { unified: p.unified } : {}), ...(legacy.length > 0 ? { legacy } : {}) }
  }

  /** Changes limits; unset fields stay as they are. */
  async update(limits: Limits): Promise<void> {
    await this.backend.applyLimits(parseLimits(limits))
  }

  /** The limits in force, read back from the kernel (`'max'` where unlimited). */
  limits(): Promise<Limits> {
    return this.backend.readLimits()
  }

  /** Moves a running process (and not its threads' siblings elsewhere) into this cgroup. */
  async addProcess(pid: number): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) throw new CgroupError('ERR_CGROUP_INVALID', `invalid pid ${pid}`)
    await this.backend.addProcess(pid)
  }

  /** Every process in the cgroup, sorted. */
  processes(): Promise<number[]> {
    return this.backend.processes()
  }

  /** Usage figures in one shape for every mode. */
  stats(): Promise<CgroupStats> {
    return this.backend.stats()
  }

  /**
   * Peak memory and CPU time only: two or three files instead of the dozen {@link stats}
   * reads — what a finished job's report needs.
   *
   * @example
   * ```ts
   * const { memoryPeak, cpu } = await cg.usage() // e.g. 1_855_488, { usageUsec: 1520, … }
   * ```
   */
  usage(): Promise<CgroupUsage> {
    return this.backend.usage()
  }

  /** Stops every process (v2 cgroup.freeze, v1 freezer) and waits until they are. */
  freeze(): Promise<void> {
    return this.backend.freeze()
  }

  /** Lets frozen processes run again. */
  thaw(): Promise<void> {
    return this.backend.thaw()
  }

  frozen(): Promise<boolean> {
    return this.backend.frozen()
  }

  /** Signals every process (default SIGKILL); no fork can slip through. */
  async kill(signal: NodeJS.Signals | number = 'SIGKILL'): Promise<void> {
    await this.backend.signalAll(signalNumber(signal))
  }

  /**
   * OOM and populated/empty events as an async iterator; ends when `signal` aborts or the
   * loop breaks.
   */
  async *events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<CgroupEvent> {
    const queue: CgroupEvent[] = []
    let wake: (() => void) | undefined
    const sub = await this.backend.subscribe((e) => {
      queue.push(e)
      wake?.()
    })
    const onAbort = () => wake?.()
    options.signal?.addEventListener('abort', onAbort)
    try {
      while (!options.signal?.aborted) {
        const next = queue.shift()
        if (next) {
          yield next
          continue
        }
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      sub.close()
    }
  }

  /** The same events through an EventEmitter. Call `close()` when done. */
  async watch(): Promise<CgroupWatcher> {
    const w = new CgroupWatcher()
    const sub = await this.backend.subscribe((e) => {
      w.emit('event', e)
      w.emit(e.type, e)
    })
    w.closeFn = () => sub.close()
    return w
  }

  /**
   * Kills every process, waits until the cgroup is empty, and removes it (sub-cgroups first,
   * EBUSY retried). Removing a cgroup that is already gone is fine. The parent levels it
   * shared with other cgroups go too once empty — unless `keepParent`: a caller that makes
   * cgroups in a stream keeps the parent between them (and removes it with
   * {@link Cgroup.removeParent} when done) instead of rebuilding it every time.
   */
  async destroy(options: { timeoutMs?: number; keepParent?: boolean } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000)
    // Usually the processes are gone already (a container's init exited, its pid namespace
    // with it): then an rmdir of each directory is all it takes, without listing anything.
    if (await this.backend.removeIfEmpty(options.keepParent ?? false)) return
    if (!(await this.backend.exists())) return
    const empty = await waitUntil(async () => {
      const procs = await this.backend.processes().catch(() => [])
      if (procs.length === 0) return true
      await this.backend.signalAll(9).catch(() => undefined)
      return false
    }, deadline)
    if (!empty) {
      throw new CgroupError('ERR_CGROUP_BUSY', `cgroup ${this.name} still has processes after SIGKILL: ${(await this.backend.processes()).join(' ')}`)
    }
    await this.backend.remove(deadline, options.keepParent ?? false)
  }

  /**
   * Removes the parent levels (`ctr`, or `options.parent`) in every hierarchy where they hold
   * no cgroup any more; a level still in use is kept, with everything above it.
   */
  static async removeParent(options: CgroupOptions = {}): Promise<void> {
    const parent = options.parent ?? 'ctr'
    checkNames('x', parent)
    const host = options.host ?? (await detect())
    await backendFor(host, parent, 'x').removeParent()
  }

  /**
   * {@link Cgroup.removeParent}, synchronously, for a process's `'exit'` handler (which cannot
   * await). The host must be given: detecting it is asynchronous.
   *
   * @example
   * ```ts
   * const host = await detect()
   * process.once('exit', () => Cgroup.removeParentSync({ parent: 'jobs', host }))
   * ```
   */
  static removeParentSync(options: CgroupOptions & { host: CgroupHost }): void {
    const parent = options.parent ?? 'ctr'
    checkNames('x', parent)
    backendFor(options.host, parent, 'x').removeParentSync()
  }
}
