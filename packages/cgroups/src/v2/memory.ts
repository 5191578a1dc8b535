/** cgroup v2 memory: memory.max, memory.high, memory.swap.max, memory.low, and usage. */
import path from 'node:path'
import { parseFlatKeyed, readOptional, readText, writeValue, type LimitWriter } from '../files.js'
import type { MemoryLimits } from '../limits.js'
import type { CgroupStats } from '../stats.js'
import { formatLimit, parseV2Limit } from '../values.js'

const NO_SWAP_HINT = 'swap accounting is not available: the kernel needs CONFIG_MEMCG_SWAP (and swapaccount=1 on older kernels)'

export async function applyMemory(dir: string, m: MemoryLimits, write: LimitWriter = writeValue): Promise<void> {
  // Lower bounds before upper ones is not needed on v2: each file is independent.
  if (m.max !== undefined) await write(path.join(dir, 'memory.max'), formatLimit(m.max))
  if (m.high !== undefined) await write(path.join(dir, 'memory.high'), formatLimit(m.high))
  if (m.swap !== undefined) await write(path.join(dir, 'memory.swap.max'), formatLimit(m.swap), NO_SWAP_HINT)
  if (m.reservation !== undefined) await write(path.join(dir, 'memory.low'), formatLimit(m.reservation))
}

export async function readMemory(dir: string): Promise<MemoryLimits> {
  const out: MemoryLimits = {
    max: parseV2Limit(await readText(path.join(dir, 'memory.max'))),
    high: parseV2Limit(await readText(path.join(dir, 'memory.high'))),
    reservation: parseV2Limit(await readText(path.join(dir, 'memory.low'))),
  }
  const swap = await readOptional(path.join(dir, 'memory.swap.max'))
  if (swap !== undefined) out.swap = parseV2Limit(swap)
  return out
}

export async function memoryStats(dir: string): Promise<CgroupStats['memory']> {
  const [current, peak, max, swap, stat] = await Promise.all([
    readText(path.join(dir, 'memory.current')),
    readOptional(path.join(dir, 'memory.peak')),
    readText(path.join(dir, 'memory.max')),
    readOptional(path.join(dir, 'memory.swap.current')),
    readText(path.join(dir, 'memory.stat')),
  ])
  return {
    current: Number(current.trim()),
    ...(peak !== undefined ? { peak: Number(peak) } : {}),
    limit: parseV2Limit(max),
    ...(swap !== undefined ? { swap: Number(swap) } : {}),
    stat: parseFlatKeyed(stat),
  }
}
