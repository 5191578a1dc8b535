/**
 * Whether the kernel's OOM killer struck inside a container's cgroup: the `oom_kill` counter
 * of `memory.events` (v2) or `memory.oom_control` (v1, kernel ≥ 4.13). Read after the
 * container's init exited, it is final: every kill was counted before the process died.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { Cgroup } from '@ctr/cgroups'

async function counter(file: string, key: string): Promise<number | undefined> {
  try {
    // A cgroup file is made in memory as it is read: a synchronous read is ~10 µs.
    const text = readFileSync(file, 'utf8')
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

/** The number of processes the OOM killer killed in the cgroup so far. */
export async function oomKills(cgroup: Cgroup): Promise<number> {
  const { unified, legacy } = cgroup.paths
  if (cgroup.mode === 'unified' && unified) return (await counter(path.join(unified, 'memory.events'), 'oom_kill')) ?? 0
  const memory = legacy['memory']
  if (memory) return (await counter(path.join(memory, 'memory.oom_control'), 'oom_kill')) ?? 0
  return 0
}
