/** cgroup v2 cpu and cpuset: cpu.max, cpu.weight, cpuset.cpus/mems, and cpu.stat. */
import path from 'node:path'
import { parseFlatKeyed, readOptional, readText, writeValue, type LimitWriter } from '../files.js'
import { sharesToWeight, weightToShares, type CpuLimits } from '../limits.js'
import type { CgroupStats } from '../stats.js'

const DEFAULT_PERIOD = 100_000

export async function applyCpu(dir: string, c: CpuLimits, write: LimitWriter = writeValue): Promise<void> {
  if (c.quota !== undefined || c.period !== undefined) {
    // cpu.max holds both: keep the half that was not given.
    const [curQuota, curPeriod] = (await readText(path.join(dir, 'cpu.max'))).trim().split(/\s+/)
    const quota = c.quota ?? (curQuota === 'max' ? 'max' : Number(curQuota))
    const period = c.period ?? Number(curPeriod ?? DEFAULT_PERIOD)
    await write(path.join(dir, 'cpu.max'), `${quota} ${period}`)
  }
  const weight = c.weight ?? (c.shares !== undefined ? sharesToWeight(c.shares) : undefined)
  if (weight !== undefined) await write(path.join(dir, 'cpu.weight'), String(weight))
  if (c.cpus !== undefined) await writeValue(path.join(dir, 'cpuset.cpus'), c.cpus, 'is the cpuset controller enabled for this cgroup?')
  if (c.mems !== undefined) await writeValue(path.join(dir, 'cpuset.mems'), c.mems, 'is the cpuset controller enabled for this cgroup?')
}

export async function readCpu(dir: string): Promise<CpuLimits> {
  const [quota, period] = (await readText(path.join(dir, 'cpu.max'))).trim().split(/\s+/)
  const weight = Number((await readText(path.join(dir, 'cpu.weight'))).trim())
  const out: CpuLimits = {
    quota: quota === 'max' ? 'max' : Number(quota),
    period: Number(period),
    weight,
    shares: weightToShares(weight), // what the same setting is on cgroup v1
  }
  const cpus = await readOptional(path.join(dir, 'cpuset.cpus'))
  const mems = await readOptional(path.join(dir, 'cpuset.mems'))
  if (cpus) out.cpus = cpus
  if (mems) out.mems = mems
  return out
}

export async function cpuStats(dir: string): Promise<CgroupStats['cpu']> {
  const s = parseFlatKeyed(await readText(path.join(dir, 'cpu.stat')))
  return {
    usageUsec: s.usage_usec ?? 0,
    userUsec: s.user_usec ?? 0,
    systemUsec: s.system_usec ?? 0,
    periods: s.nr_periods ?? 0,
    throttledPeriods: s.nr_throttled ?? 0,
    throttledUsec: s.throttled_usec ?? 0,
  }
}
