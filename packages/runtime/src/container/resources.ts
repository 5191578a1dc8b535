/**
 * What a container holds on the host — its cgroup, its snapshot (an overlay mount and upper
 * directory), its state directory — and how to release it, in reverse order of creation.
 * Release is idempotent and goes on past a failing step, so a half-created or crashed
 * container is always cleaned up completely; the first failure is reported at the end.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { Cgroup, type CgroupHost } from '@ctr/cgroups'
import type { ImageStore } from '@ctr/overlay-image'
import { RuntimeError } from '../errors.js'
import { leaveNetwork } from '../network/network.js'
import type { StateStore } from './state.js'

export interface ContainerResources {
  id: string
  store: ImageStore
  states: StateStore
  /** Set once created. */
  cgroup?: Cgroup
  /** The host's cgroup setup (saves detecting it again). */
  cgroupHost?: CgroupHost
  /** Its name and parent, to reopen it after a crash. */
  cgroupName?: string
  cgroupParent?: string
  /** Absolute cgroup directories, for a release from a process in another cgroup. */
  cgroupPaths?: string[]
  /** Set once the snapshot exists. */
  snapshot?: string
  /** Whether the state directory exists. */
  stateDir?: boolean
  /** The container's name, when known (else its state is read to free it). */
  name?: string
  /** The bridge network holding an address for it. */
  network?: { stateRoot: string; name: string }
  /** Leave the shared cgroup parent in place (the runtime removes it when idle). */
  keepCgroupParent?: boolean
  /** Called once, after the cgroup's release was attempted. */
  onReleased?: () => void
}

export async function releaseResources(r: ContainerResources): Promise<void> {
  const failures: unknown[] = []
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f()
    } catch (err) {
      failures.push(new RuntimeError('ERR_RUNTIME_CLEANUP', `${what}: ${(err as Error).message}`, { cause: err }))
    }
  }
  // The cgroup and the snapshot are independent: released together. The state goes last, so
  // that a crash in between leaves something the next cleanup can still find.
  const cgroupDone = (async () => {
    if (r.cgroup) {
      const cg = r.cgroup
      await attempt(`remove cgroup ${cg.name}`, () => cg.destroy(r.keepCgroupParent ? { keepParent: true } : {}))
      const done = r.onReleased
      r.onReleased = undefined
      done?.()
    } else if (r.cgroupName) {
      const name = r.cgroupName
      await attempt(`remove cgroup ${name}`, async () => {
        const cg = await Cgroup.open(name, { ...(r.cgroupParent ? { parent: r.cgroupParent } : {}), ...(r.cgroupHost ? { host: r.cgroupHost } : {}) }).catch((err: { code?: string }) => {
          if (err.code === 'ERR_CGROUP_NOT_FOUND') return undefined
          throw err
        })
        if (cg) await cg.destroy()
        else if (r.cgroupPaths?.length) await removeCgroupDirs(r.cgroupPaths)
      })
    }
  })()
  const snapshotDone = (async () => {
    if (r.snapshot) {
      const snap = r.snapshot
      await attempt(`remove snapshot ${snap}`, () => r.store.remove(snap))
    }
  })()
  await Promise.all([cgroupDone, snapshotDone])
  // Its processes are gone: its veth, address and hosts entry go (and an implicit network with its last container).
  if (r.network) {
    const n = r.network
    await attempt(`leave network ${n.name}`, () => leaveNetwork({ stateRoot: n.stateRoot, id: r.id, network: n.name }))
  }
  if (r.stateDir) await attempt(`remove state of ${r.id}`, () => r.states.remove(r.id, r.name))
  if (failures.length) throw failures[0]
}

/**
 * Removes a cgroup by its absolute directories (one per hierarchy) when `Cgroup.open` cannot
 * find it — it sits below another process's own cgroup. Every process in it is killed first.
 */
async function removeCgroupDirs(dirs: readonly string[]): Promise<void> {
  const alive = async (): Promise<number[]> => {
    const lists = await Promise.all(dirs.map((d) => fs.readFile(path.join(d, 'cgroup.procs'), 'utf8').catch(() => '')))
    return [...new Set(lists.join('\n').split('\n').filter(Boolean).map(Number))]
  }
  for (let i = 0; i < 100; i++) {
    const pids = await alive()
    if (pids.length === 0) break
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  for (const d of dirs) {
    await fs.rmdir(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
  }
}
