/** Container options → cgroup limits, with Docker's meanings. */
import type { Limits } from '@ctr/cgroups'
import { cpusToQuota, parseSize } from '../options/units.js'

export interface LimitOptions {
  memory?: string | number
  memorySwap?: string | number | -1
  cpus?: number
  pids?: number
  ioWeight?: number
}

/**
 * `memory` is the hard limit; `memorySwap` is memory + swap as in `docker run --memory-swap`
 * (-1: unlimited swap). Unset, swap is left to the host (Docker asks for as much swap as
 * memory, which fails where swap accounting is off; leaving it alone works everywhere).
 */
export function cgroupLimits(o: LimitOptions): Limits {
  const limits: Limits = {}
  if (o.memory !== undefined) {
    const max = parseSize(o.memory)!
    limits.memory = { max }
    if (o.memorySwap !== undefined) {
      limits.memory.swap = o.memorySwap === -1 ? 'max' : Math.max(0, parseSize(o.memorySwap)! - max)
    }
  }
  if (o.cpus !== undefined) limits.cpu = cpusToQuota(o.cpus)
  if (o.pids !== undefined) limits.pids = { max: o.pids }
  if (o.ioWeight !== undefined) limits.io = { weight: o.ioWeight }
  return limits
}
