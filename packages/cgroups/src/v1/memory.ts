/** cgroup v1 memory: memory.limit_in_bytes, memory.memsw.limit_in_bytes, soft limit, usage. */
import path from 'node:path'
import { CgroupError } from '../errors.js'
import { parseFlatKeyed, readOptional, readText, writeValue, type LimitWriter } from '../files.js'
import type { MemoryLimits } from '../limits.js'
import type { CgroupStats } from '../stats.js'
import { parseV1Limit } from '../values.js'

const v1 = (v: number | 'max') => (v === 'max' ? '-1' : String(v))
const NO_SWAP_HINT = 'swap accounting is off: boot the kernel with swapaccount=1 (memory.memsw.* is missing)'

export async function applyMemory(dir: string, m: MemoryLimits, write: LimitWriter = writeValue): Promise<void> {
  if (m.high !== undefined) {
    throw new CgroupError('ERR_CGROUP_UNSUPPORTED', 'memory.high has no cgroup v1 equivalent', {
      path: dir,
      hint: 'use memory.reservation (memory.soft_limit_in_bytes) on v1, or run on cgroup v2',
    })
  }
  const limitFile = path.join(dir, 'memory.limit_in_bytes')
  const memswFile = path.join(dir, 'memory.memsw.limit_in_bytes')
  if (m.max !== undefined || m.swap !== undefined) {
    const limit = m.max ?? parseV1Limit(await readText(limitFile))
    // memsw (memory + swap) must never be below the memory limit: order the two writes so
    // that holds after each one.
    const memsw: number | 'max' | undefined =
      m.swap === undefined ? undefined : m.swap === 'max' || limit === 'max' ? 'max' : limit + m.swap
    if (memsw !== undefined && (await readOptional(memswFile)) === undefined) {
      throw new CgroupError('ERR_CGROUP_CONTROLLER_MISSING', `cannot limit swap: ${memswFile} does not exist`, { path: memswFile, hint: NO_SWAP_HINT })
    }
    const currentMemsw = parseV1Limit((await readOptional(memswFile)) ?? '-1')
    const raising = limit === 'max' || (currentMemsw !== 'max' && limit > currentMemsw)
    if (memsw !== undefined && raising) await write(memswFile, v1(memsw))
    if (m.max !== undefined) await write(limitFile, v1(m.max))
    if (memsw !== undefined && !raising) await write(memswFile, v1(memsw))
  }
  if (m.reservation !== undefined) await write(path.join(dir, 'memory.soft_limit_in_bytes'), v1(m.reservation))
}

export async function readMemory(dir: string): Promise<MemoryLimits> {
  const max = parseV1Limit(await readText(path.join(dir, 'memory.limit_in_bytes')))
  const out: MemoryLimits = { max, reservation: parseV1Limit(await readText(path.join(dir, 'memory.soft_limit_in_bytes'))) }
  const memsw = await readOptional(path.join(dir, 'memory.memsw.limit_in_bytes'))
  if (memsw !== undefined) {
    const total = parseV1Limit(memsw)
    out.swap = total === 'max' || max === 'max' ? 'max' : total - max
  }
  return out
}

export async function memoryStats(dir: string): Promise<CgroupStats['memory']> {
  const [usage, peak, limit, memsw, stat] = await Promise.all([
    readText(path.join(dir, 'memory.usage_in_bytes')),
    readText(path.join(dir, 'memory.max_usage_in_bytes')),
    readText(path.join(dir, 'memory.limit_in_bytes')),
    readOptional(path.join(dir, 'memory.memsw.usage_in_bytes')),
    readText(path.join(dir, 'memory.stat')),
  ])
  const current = Number(usage.trim())
  return {
    current,
    peak: Number(peak.trim()),
    limit: parseV1Limit(limit),
    ...(memsw !== undefined ? { swap: Math.max(0, Number(memsw) - current) } : {}),
    stat: parseFlatKeyed(stat),
  }
}
