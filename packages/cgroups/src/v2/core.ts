/**
 * The core files of every cgroup2 directory, with or without controllers: cgroup.procs,
 * cgroup.events, cgroup.freeze, cgroup.kill, cgroup.subtree_control. Hybrid hosts use these
 * on their (controller-less) unified hierarchy too.
 */
import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'
import { CgroupError } from '../errors.js'
import { exists, parseFlatKeyed, readOptional, readPids, readText, writeValue } from '../files.js'
import type { CgroupEvent, Subscription } from '../backend.js'
import { waitUntil } from '../tree.js'

export const procsOf = (dir: string) => readPids(path.join(dir, 'cgroup.procs'))

export async function addProcessV2(dir: string, pid: number): Promise<void> {
  await writeValue(path.join(dir, 'cgroup.procs'), String(pid))
}

/** Controllers listed in a cgroup's `cgroup.subtree_control`. */
async function enabledControllers(dir: string): Promise<Set<string>> {
  return new Set((await readText(path.join(dir, 'cgroup.subtree_control'))).split(/\s+/).filter(Boolean))
}

/**
 * Hands `wanted` controllers from `dir` to its children. On a cgroup that holds processes
 * itself (other than the root) the kernel refuses (EBUSY): the "no internal processes" rule.
 */
export async function delegateControllers(dir: string, wanted: string[]): Promise<void> {
  const available = new Set((await readText(path.join(dir, 'cgroup.controllers'))).split(/\s+/).filter(Boolean))
  const enabled = await enabledControllers(dir)
  const missing = wanted.filter((c) => available.has(c) && !enabled.has(c))
  if (missing.length === 0) return
  try {
    await writeValue(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '))
  } catch (err) {
    const e = err as CgroupError
    const file = path.join(dir, 'cgroup.subtree_control')
    if (e.errnoCode === 'EBUSY') {
      throw new CgroupError('ERR_CGROUP_NOT_DELEGATED', `cannot enable ${missing.map((c) => `+${c}`).join(' ')} in ${file}: the cgroup holds processes`, {
        path: file,
        hint: `cgroup v2 only lets a cgroup without processes of its own delegate controllers: run this service under a systemd unit with Delegate=yes (its processes in a leaf such as ${path.join(dir, 'service')}), or pass a parent whose cgroup.subtree_control already has ${missing.map((c) => `+${c}`).join(' ')}`,
        cause: err,
      })
    }
    if (e.errnoCode === 'EACCES' || e.errnoCode === 'EPERM') {
      throw new CgroupError('ERR_CGROUP_NOT_DELEGATED', `cannot enable controllers in ${file}: ${e.errnoCode}`, {
        path: file,
        hint: 'run as root, or under a systemd unit with Delegate=yes',
        cause: err,
      })
    }
    throw err
  }
}

export async function freezeV2(dir: string, frozen: boolean, deadline: number): Promise<void> {
  await writeValue(path.join(dir, 'cgroup.freeze'), frozen ? '1' : '0', 'cgroup.freeze needs Linux 5.2 or newer')
  // The write starts the transition; cgroup.events says when every task got there.
  const done = await waitUntil(async () => (await isFrozenV2(dir)) === frozen, deadline)
  if (!done) throw new CgroupError('ERR_CGROUP_BUSY', `${dir} did not become ${frozen ? 'frozen' : 'thawed'} in time`, { path: dir })
}

export async function isFrozenV2(dir: string): Promise<boolean> {
  return parseFlatKeyed(await readText(path.join(dir, 'cgroup.events'))).frozen === 1
}

/** SIGKILL through cgroup.kill (Linux 5.14+); false when the kernel lacks it. */
export async function killV2(dir: string): Promise<boolean> {
  const file = path.join(dir, 'cgroup.kill')
  if (!(await exists(file))) return false
  await writeValue(file, '1')
  return true
}

/**
 * Watches cgroup.events (populated) and, when given, memory.events (oom, oom_kill) with
 * inotify — the kernel notifies on every change of those files — and reports the changes.
 */
export async function subscribeV2(dir: string, memoryDir: string | undefined, onEvent: (e: CgroupEvent) => void): Promise<Subscription> {
  const watchers: FSWatcher[] = []
  let closed = false
  let populated = parseFlatKeyed(await readText(path.join(dir, 'cgroup.events'))).populated === 1
  const memFile = memoryDir ? path.join(memoryDir, 'memory.events') : undefined
  const readMem = async () => parseFlatKeyed((memFile && (await readOptional(memFile))) || '')
  let mem = await readMem()

  const checkEvents = async () => {
    if (closed) return
    const now = parseFlatKeyed((await readOptional(path.join(dir, 'cgroup.events'))) ?? '').populated === 1
    if (closed || now === populated) return
    populated = now
    onEvent({ type: now ? 'populated' : 'empty' })
  }
  const checkMemory = async () => {
    if (closed) return
    const now = await readMem()
    for (const key of ['oom', 'oom_kill'] as const) {
      const delta = (now[key] ?? 0) - (mem[key] ?? 0)
      if (delta > 0 && !closed) onEvent({ type: key, count: delta })
    }
    mem = now
  }
  // Serialise the checks: inotify may fire faster than we read.
  let chain = Promise.resolve()
  const queue = (check: () => Promise<void>) => {
    chain = chain.then(check).catch(() => undefined)
  }
  watchers.push(watch(path.join(dir, 'cgroup.events'), { persistent: false }, () => queue(checkEvents)))
  if (memFile && (await exists(memFile))) watchers.push(watch(memFile, { persistent: false }, () => queue(checkMemory)))
  return {
    close() {
      closed = true
      for (const w of watchers) w.close()
    },
  }
}
