/** cgroup v2 pids: pids.max and pids.current. */
import path from 'node:path'
import { readText, writeValue, type LimitWriter } from '../files.js'
import type { CgroupStats } from '../stats.js'
import { formatLimit, parseV2Limit } from '../values.js'

export async function applyPids(dir: string, p: { max: number | 'max' }, write: LimitWriter = writeValue): Promise<void> {
  await write(path.join(dir, 'pids.max'), formatLimit(p.max))
}

export async function readPidsLimit(dir: string): Promise<{ max: number | 'max' }> {
  return { max: parseV2Limit(await readText(path.join(dir, 'pids.max'))) }
}

export async function pidsStats(dir: string): Promise<CgroupStats['pids']> {
  const [current, max] = await Promise.all([readText(path.join(dir, 'pids.current')), readText(path.join(dir, 'pids.max'))])
  return { current: Number(current.trim()), max: parseV2Limit(max) }
}
