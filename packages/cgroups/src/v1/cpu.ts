/** cgroup v1 cpu and cpuacct: cpu.cfs_quota_us/period_us, cpu.shares, and usage. */
import path from 'node:path'
import { parseFlatKeyed, readOptional, readText, writeValue, type LimitWriter } from '../files.js'
import { sharesToWeight, weightToShares, type CpuLimits } from '../limits.js'
import type { CgroupStats, CgroupUsage } from '../stats.js'

/** USER_HZ: cpuacct.stat counts in these ticks on every Linux architecture ctr supports. */
const USER_HZ = 100

export async function applyCpu(dir: string, c: CpuLimits, write: LimitWriter = writeValue): Promise<void> {
  if (c.period !== undefined) await write(path.join(dir, 'cpu.cfs_period_us'), String(c.period))
  if (c.quota !== undefined) await write(path.join(dir, 'cpu.cfs_quota_us'), c.quota === 'max' ? '-1' : String(c.quota))
  const shares = c.shares ?? (c.weight !== undefined ? weightToShares(c.weight) : undefined)
  if (shares !== undefined) await write(path.join(dir, 'cpu.shares'), String(shares))
}

export async function readCpu(dir: string): Promise<CpuLimits> {
  const quota = Number((await readText(path.join(dir, 'cpu.cfs_quota_us'))).trim())
  const shares = Number((await readText(path.join(dir, 'cpu.shares'))).trim())
  return {
    quota: quota < 0 ? 'max' : quota,
    period: Number((await readText(path.join(dir, 'cpu.cfs_period_us'))).trim()),
    shares,
    weight: sharesToWeight(shares), // what the same setting is on cgroup v2
  }
}

/** CPU time used (cpuacct.usage and cpuacct.stat): the part of {@link cpuStats} a usage report needs. */
export async function cpuUsage(cpuacctDir: string | undefined): Promise<CgroupUsage['cpu']> {
  const usageNs = cpuacctDir ? Number((await readOptional(path.join(cpuacctDir, 'cpuacct.usage'))) ?? 0) : 0
  const ticks = cpuacctDir ? parseFlatKeyed((await readOptional(path.join(cpuacctDir, 'cpuacct.stat'))) ?? '') : {}
  return {
    usageUsec: Math.floor(usageNs / 1000),
    userUsec: ((ticks.user ?? 0) * 1_000_000) / USER_HZ,
    systemUsec: ((ticks.system ?? 0) * 1_000_000) / USER_HZ,
  }
}

/** Usage from cpuacct (its own directory, or the cpu one when co-mounted) and throttling from cpu.stat. */
export async function cpuStats(cpuDir: string | undefined, cpuacctDir: string | undefined): Promise<CgroupStats['cpu']> {
  const used = await cpuUsage(cpuacctDir)
  const throttle = cpuDir ? parseFlatKeyed((await readOptional(path.join(cpuDir, 'cpu.stat'))) ?? '') : {}
  return {
    ...used,
    periods: throttle.nr_periods ?? 0,
    throttledPeriods: throttle.nr_throttled ?? 0,
    throttledUsec: Math.floor((throttle.throttled_time ?? 0) / 1000),
  }
}
