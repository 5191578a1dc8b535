/**
 * `@ctr/cgroups`: limits, priority, accounting and control of processes through Linux
 * cgroups, on pure v2, v1 and hybrid hosts alike.
 *
 * @example
 * ```ts
 * import { Cgroup, detect } from '@ctr/cgroups'
 * const host = await detect() // { mode: 'hybrid', controllers: [...], ... }
 * const cg = await Cgroup.create('probe', { memory: { max: 64 * 2 ** 20 }, pids: { max: 32 } })
 * await cg.addProcess(pid)
 * const s = await cg.stats() // s.memory.current, s.pids.current, s.cpu.usageUsec ...
 * await cg.destroy()
 * ```
 * @packageDocumentation
 */
export { Cgroup, CgroupWatcher, type CgroupOptions, type CgroupPlacement } from './cgroup.js'
export { detect, type CgroupHost, type CgroupMode, type Controller, type LegacyHierarchy, type UnifiedHierarchy } from './detect.js'
export { CgroupError, type CgroupErrorCode } from './errors.js'
export {
  sharesToWeight,
  weightToShares,
  ioWeightToBlkio,
  blkioToIoWeight,
  type Limits,
  type MemoryLimits,
  type CpuLimits,
  type IoLimits,
  type IoDeviceLimit,
  type Bytes,
} from './limits.js'
export type { CgroupStats, CgroupUsage, Psi, PsiLine } from './stats.js'
export type { CgroupEvent, CgroupPaths } from './backend.js'
