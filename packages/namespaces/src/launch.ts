/**
 * Shared tail of spawn() and enter(): hand the plan to the native interpreter, turn a failure
 * into a SpawnError that names the step, and wrap a success in a RunningChild.
 */
import { closeSync, constants, openSync } from 'node:fs'
import path from 'node:path'
import { CloneFlag, Phase, spawnPlan, type SpawnPlan } from '@ctr/native'
import { RunningChild } from './child.js'
import { AbortError, SpawnError } from './errors.js'
import type { NamespaceType } from './ids.js'
import type { StepList } from './plan-builder.js'
import { StdioSet } from './stdio.js'
import type { CgroupPlacement, Child, ProcessOptions } from './types.js'

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export const NS_FLAG: Record<NamespaceType, number> = {
  pid: CloneFlag.NEWPID,
  mnt: CloneFlag.NEWNS,
  uts: CloneFlag.NEWUTS,
  ipc: CloneFlag.NEWIPC,
  net: CloneFlag.NEWNET,
  user: CloneFlag.NEWUSER,
  cgroup: CloneFlag.NEWCGROUP,
  time: CloneFlag.NEWTIME,
}

/** setns order: the user namespace first (it grants rights over the others), mnt last. */
const JOIN_ORDER: NamespaceType[] = ['user', 'cgroup', 'ipc', 'uts', 'net', 'pid', 'time', 'mnt']

/** Namespace files opened for joining; closed once the child has them (or has failed). */
export class Joins {
  readonly entries: { fd: number; nstype: number }[] = []
  readonly labels: string[] = []
  twoStage = false

  constructor(targets: Partial<Record<NamespaceType, number | string>>) {
    try {
      for (const type of JOIN_ORDER) {
        const target = targets[type]
        if (target === undefined) continue
        const file = typeof target === 'number' ? `/proc/${target}/ns/${type}` : target
        let fd: number
        try {
          fd = openSync(file, 'r')
        } catch (err) {
          const e = err as NodeJS.ErrnoException
          throw new SpawnError(`open ${type} namespace ${file}`, e.errno === undefined ? 2 : -e.errno, { syscall: 'open', path: file, cause: err })
        }
        this.entries.push({ fd, nstype: NS_FLAG[type] })
        this.labels.push(`setns ${type} (${file})`)
        // pid and time namespaces apply to children only: the child must fork once more.
        if (type === 'pid' || type === 'time') this.twoStage = true
      }
    } catch (err) {
      this.close()
      throw err
    }
  }

  close(): void {
    for (const { fd } of this.entries.splice(0)) closeSync(fd)
  }
}

/**
 * The child's cgroups: an open cgroup2 directory for CLONE_INTO_CGROUP, and the v1 `tasks`
 * files the child joins itself before anything else (see `SpawnPlan.cgroupTasks`).
 */
export class Placement {
  readonly fd: number | undefined
  readonly path: string | undefined
  readonly tasks: string[]

  constructor(placement: CgroupPlacement | undefined) {
    this.path = placement?.unified
    this.tasks = (placement?.legacy ?? []).map((dir) => `${dir}/tasks`)
    if (this.path === undefined) return
    try {
      this.fd = openSync(this.path, constants.O_RDONLY | constants.O_DIRECTORY)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw new SpawnError(`open cgroup ${this.path}`, e.errno === undefined ? 2 : -e.errno, { syscall: 'open', path: this.path, cause: err })
    }
  }

  /** The plan's cgroup fields: the cgroup2 directory to clone into, the v1 `tasks` files to join. */
  planFields(): Pick<SpawnPlan, 'cgroupFd' | 'cgroupPath' | 'cgroupTasks'> {
    return {
      ...(this.fd === undefined ? {} : { cgroupFd: this.fd, cgroupPath: this.path! }),
      ...(this.tasks.length > 0 ? { cgroupTasks: this.tasks } : {}),
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
  }
}

export function environment(env: Record<string, string> | undefined): { list: string[]; path: string } {
  const e = env ?? { PATH: DEFAULT_PATH }
  return { list: Object.entries(e).map(([k, v]) => `${k}=${v}`), path: e.PATH ?? DEFAULT_PATH }
}

function describeFailure(err: { phase?: number; index?: number }, ctx: LaunchContext): { step: string; syscall?: string; path?: string } {
  const i = err.index ?? -1
  switch (err.phase) {
    case Phase.Step: {
      const label = ctx.steps.labels[i]
      return label ?? { step: `step ${i}` }
    }
    case Phase.Join:
      return { step: ctx.joins.labels[i] ?? `setns ${i}`, syscall: 'setns' }
    case Phase.Fds: {
      const m = ctx.plan.fds[i]
      return { step: m ? `pass fd ${m.source} as fd ${m.target}` : 'pass fds', syscall: 'dup3' }
    }
    case Phase.Exec:
      return { step: `exec ${ctx.plan.exec.path}`, syscall: 'execve', path: ctx.plan.exec.path }
    case Phase.Clone:
      return { step: 'clone into the joined pid namespace', syscall: 'clone' }
    case Phase.Cgroup: {
      const tasks = ctx.placement.tasks[i] ?? ''
      return { step: `join cgroup ${path.dirname(tasks)}`, syscall: 'write', path: tasks }
    }
    default:
      return { step: 'prepare the child', syscall: 'fcntl' }
  }
}

export interface LaunchContext {
  plan: SpawnPlan
  steps: StepList
  joins: Joins
  placement: Placement
  stdio: StdioSet
  signal: AbortSignal | undefined
}

/** Runs the plan; owns (and always closes) the joins' fds, the cgroup fd and the stdio fds. */
export async function launch(ctx: LaunchContext): Promise<Child> {
  let result: { pid: number; pidfd: number; mntnsFd?: number }
  try {
    if (ctx.signal?.aborted) throw new AbortError(ctx.signal.reason)
    try {
      result = await spawnPlan(ctx.plan)
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { phase?: number; index?: number }
      if (typeof e.errno !== 'number') throw err
      if (e.phase === Phase.Parent) {
        throw new SpawnError(`${e.syscall} ${e.path ?? ''}`.trim(), e.errno, { syscall: e.syscall ?? '', path: e.path ?? '', cause: err })
      }
      const where = describeFailure(e, ctx)
      throw new SpawnError(where.step, e.errno, { ...where, cause: err })
    }
  } catch (err) {
    ctx.stdio.dispose()
    throw err
  } finally {
    ctx.joins.close()
    ctx.placement.close()
  }
  const child = new RunningChild(result.pid, result.pidfd, ctx.stdio.commit(), result.mntnsFd)
  const signal = ctx.signal
  if (signal) {
    const onAbort = () => child.kill('SIGKILL')
    if (signal.aborted) onAbort()
    else {
      signal.addEventListener('abort', onAbort, { once: true })
      void child.exited.then(() => signal.removeEventListener('abort', onAbort))
    }
  }
  return child
}

/** The stdio and extra fds of a process's options. */
export function stdioOf(o: ProcessOptions): StdioSet {
  return new StdioSet(o.stdio ?? ['ignore', 'inherit', 'inherit'], o.fds ?? [])
}

/** Opens what a plan needs (stdio, namespace files, cgroup), closing all of it if any part fails. */
export function openResources(o: ProcessOptions, targets: Partial<Record<NamespaceType, number | string>>): { stdio: StdioSet; joins: Joins; placement: Placement } {
  const stdio = stdioOf(o)
  let joins: Joins | undefined
  try {
    joins = new Joins(targets)
    const placement = new Placement(o.cgroup)
    return { stdio, joins, placement }
  } catch (err) {
    joins?.close()
    stdio.dispose()
    throw err
  }
}
