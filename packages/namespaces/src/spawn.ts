import { Op, type SpawnPlan } from '@ctr/native'
import { parseOptions, spawnSchema } from './options.js'
import { environment, launch, NS_FLAG, openResources } from './launch.js'
import { StepList } from './plan-builder.js'
import { addHostnameSteps, addProcessSteps } from './process-steps.js'
import { addRootfsSteps } from './rootfs.js'
import type { Child, IdMapEntry, SpawnOptions } from './types.js'

/** The id to take inside a new user namespace for setup: its root if mapped, else the first mapped id. */
function setupId(map: IdMapEntry[]): number {
  return map.some((e) => e.containerId === 0) ? 0 : map[0]!.containerId
}

function idMapText(map: IdMapEntry[]): string {
  return map.map((e) => `${e.containerId} ${e.hostId} ${e.size}\n`).join('')
}

/**
 * Starts a program in new (or joined) Linux namespaces. Resolves once the program really
 * runs — after every namespace, mount and identity step succeeded and `execve` did — or
 * rejects with a {@link SpawnError} naming the step that failed (no process, mount or fd is
 * left behind), or an {@link InvalidOptionsError} before anything is created.
 *
 * @example
 * ```ts
 * import { spawn, readText } from '@ctr/namespaces'
 * const child = await spawn({
 *   argv: ['/bin/sh', '-c', 'echo $$; hostname'],
 *   namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'],
 *   hostname: 'box',
 *   stdio: ['ignore', 'pipe', 'pipe'],
 * })
 * console.log(await readText(child.stdout)) // "1\nbox\n"
 * const { code, signal } = await child.exited // { code: 0, signal: null }
 * ```
 */
export async function spawn(options: SpawnOptions): Promise<Child> {
  const o = parseOptions(spawnSchema, options)
  const created = new Set(o.namespaces ?? [])
  const userNs = created.has('user')

  const parentWrites: SpawnPlan['parentWrites'] = []
  let setgroupsAllowed = true
  const steps = new StepList()
  if (userNs) {
    const uid = process.geteuid?.() ?? 0
    const gid = process.getegid?.() ?? 0
    const uidMap = o.uidMap ?? [{ containerId: 0, hostId: uid, size: 1 }]
    const gidMap = o.gidMap ?? [{ containerId: 0, hostId: gid, size: 1 }]
    // An unprivileged writer may only map its own gid after denying setgroups.
    const setgroups = o.setgroups ?? (uid === 0 ? 'allow' : 'deny')
    setgroupsAllowed = setgroups === 'allow'
    parentWrites.push({ path: '/proc/{pid}/uid_map', data: idMapText(uidMap) })
    parentWrites.push({ path: '/proc/{pid}/setgroups', data: setgroups })
    parentWrites.push({ path: '/proc/{pid}/gid_map', data: idMapText(gidMap) })
    // The child starts as our (unmapped) host ids: files it creates need mapped ones. Become
    // the namespace's root first, as runc's init does; capabilities in the namespace stay.
    const [u, g] = [setupId(uidMap), setupId(gidMap)]
    steps.add({ op: Op.SetResgid, n: [g] }, { step: `setresgid ${g} in the new user namespace`, syscall: 'setresgid' })
    steps.add({ op: Op.SetResuid, n: [u] }, { step: `setresuid ${u} in the new user namespace`, syscall: 'setresuid' })
  }

  addHostnameSteps(steps, o.hostname, o.domainname)
  // A new network namespace starts with `lo` down; runc and Docker bring it up.
  if (created.has('net') && (o.loopback ?? true)) {
    steps.add({ op: Op.LinkUp, s: ['lo'] }, { step: 'bring up lo in the new network namespace', syscall: 'ioctl' })
  }
  if (o.rootfs) {
    addRootfsSteps(steps, o.rootfs, {
      userNs,
      pidNs: created.has('pid'),
      netNs: created.has('net'),
      ipcNs: created.has('ipc'),
    })
  }
  if (o.cwd !== undefined || o.rootfs) {
    const cwd = o.cwd ?? '/'
    steps.add({ op: Op.Chdir, s: [cwd] }, { step: `chdir ${cwd}`, syscall: 'chdir', path: cwd })
  }
  // Inside a new user namespace we start as an unmapped id: become its root unless told otherwise.
  const user = o.user ?? (userNs ? { uid: 0, gid: 0 } : undefined)
  addProcessSteps(steps, { ...o, umask: o.umask ?? (o.rootfs ? 0o022 : undefined) }, user, setgroupsAllowed)

  let cloneFlags = 0
  for (const t of created) cloneFlags |= NS_FLAG[t]

  const env = environment(o.env)
  const { stdio, joins, placement } = openResources(o, o.join ?? {})
  const plan: SpawnPlan = {
    cloneFlags,
    joins: joins.entries,
    twoStage: joins.twoStage,
    ...placement.planFields(),
    parentWrites,
    fds: stdio.moves,
    steps: steps.steps,
    exec: { path: o.argv[0]!, argv: o.argv, env: env.list, search: env.path },
    // The child's own mount namespace is held until its exit has been reported (see RunningChild).
    ...(created.has('mnt') && !joins.twoStage ? { holdMountNs: true } : {}),
  }
  return launch({ plan, steps, joins, placement, stdio, signal: o.signal })
}
