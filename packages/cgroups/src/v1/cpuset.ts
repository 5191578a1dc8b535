/** cgroup v1 cpuset: cpuset.cpus and cpuset.mems, which start empty in a new v1 cgroup. */
import path from 'node:path'
import { readText, writeValue } from '../files.js'
import type { CpuLimits } from '../limits.js'

/**
 * A new v1 cpuset cgroup has no CPUs and no memory nodes, and a process cannot join it until
 * it has: copy the parent's, as runc does.
 */
export async function inheritCpuset(dir: string): Promise<void> {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const mine = (await readText(path.join(dir, f))).trim()
    if (mine === '') await writeValue(path.join(dir, f), (await readText(path.join(path.dirname(dir), f))).trim())
  }
}

/** Whether a cpuset cgroup has CPUs and memory nodes (a process can join it). */
export async function cpusetFilled(dir: string): Promise<boolean> {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) if ((await readText(path.join(dir, f))).trim() === '') return false
  return true
}

/**
 * For a level of ours that holds containers' cgroups: its cpus and mems filled (as above), and
 * `cgroup.clone_children` on, so the kernel fills each new child at mkdir. Writing a child's
 * cpuset.cpus ourselves takes milliseconds (the kernel revalidates scheduling domains); the
 * copy at mkdir does not.
 */
export async function prepareCpusetParent(dir: string): Promise<void> {
  await inheritCpuset(dir)
  const file = path.join(dir, 'cgroup.clone_children')
  if ((await readText(file)).trim() !== '1') await writeValue(file, '1')
}

export async function applyCpuset(dir: string, c: CpuLimits): Promise<void> {
  if (c.cpus !== undefined) await writeValue(path.join(dir, 'cpuset.cpus'), c.cpus, 'the CPUs must exist and be allowed in the parent cgroup')
  if (c.mems !== undefined) await writeValue(path.join(dir, 'cpuset.mems'), c.mems, 'the memory nodes must exist and be allowed in the parent cgroup')
}

export async function readCpuset(dir: string): Promise<Pick<CpuLimits, 'cpus' | 'mems'>> {
  return {
    cpus: (await readText(path.join(dir, 'cpuset.cpus'))).trim(),
    mems: (await readText(path.join(dir, 'cpuset.mems'))).trim(),
  }
}
