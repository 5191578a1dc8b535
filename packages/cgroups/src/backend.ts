/**
 * What a cgroup version must provide. v1/ and v2/ implement it side by side; `Cgroup` (the
 * public class) only talks to this interface, so a reader looking for "where is the v1
 * memory limit written" finds it in v1/memory.ts.
 */
import type { Limits } from './limits.js'
import type { CgroupStats, CgroupUsage } from './stats.js'
import type { CgroupMode } from './detect.js'

/** Something that happened in a cgroup. */
export type CgroupEvent =
  /** The cgroup hit its memory limit and the OOM handling ran (`count` times since the last event). */
  | { type: 'oom'; count: number }
  /** Processes were killed by the OOM killer (v2 `memory.events` oom_kill; v1 where the kernel counts it). */
  | { type: 'oom_kill'; count: number }
  /** The first process entered the cgroup (or one of its children). */
  | { type: 'populated' }
  /** The last process left. */
  | { type: 'empty' }

/** The directories of one cgroup. */
export interface CgroupPaths {
  /** The cgroup2 directory (pure v2, and hybrid hosts). */
  unified?: string
  /** v1 directories keyed by controller (`memory`, `cpu`, `cpuacct`, `cpuset`, `pids`, `blkio`, `freezer`). */
  legacy: Record<string, string>
}

/** Stops an event subscription. */
export interface Subscription {
  close(): void
}

export interface CgroupBackend {
  readonly mode: CgroupMode
  readonly paths: CgroupPaths
  /** Creates every directory (and enables controllers on the way); undoes its work on failure. */
  create(): Promise<void>
  /** True when the cgroup's directories exist. */
  exists(): Promise<boolean>
  /** `fresh`: the cgroup was made a moment ago and holds nothing yet (limits can be written synchronously). */
  applyLimits(limits: Limits, fresh?: boolean): Promise<void>
  readLimits(): Promise<Limits>
  addProcess(pid: number): Promise<void>
  processes(): Promise<number[]>
  stats(): Promise<CgroupStats>
  usage(): Promise<CgroupUsage>
  freeze(): Promise<void>
  thaw(): Promise<void>
  frozen(): Promise<boolean>
  /** Sends a signal to every process, without letting a fork slip through. */
  signalAll(signal: number): Promise<void>
  /** Calls back on OOM and populated/empty changes until closed. */
  subscribe(onEvent: (e: CgroupEvent) => void): Promise<Subscription>
  /**
   * Removes the directories (children first); an already removed cgroup is fine. The shared
   * parent levels go too once empty, unless `keepParent`.
   */
  remove(deadline: number, keepParent?: boolean): Promise<void>
  /**
   * The fast path of a destroy: rmdir of each directory, no listing first. True when all are
   * gone; false when one is still busy (processes or sub-cgroups: the full destroy follows).
   */
  removeIfEmpty(keepParent: boolean): Promise<boolean>
  /** Removes the shared parent levels (in every hierarchy) that hold no cgroup any more. */
  removeParent(): Promise<void>
  /** {@link removeParent}, synchronously (for an 'exit' handler). */
  removeParentSync(): void
}
