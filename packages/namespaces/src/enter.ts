import { Op, type SpawnPlan } from '@ctr/native'
import { InvalidOptionsError } from './errors.js'
import { enterSchema, parseOptions } from './options.js'
import { namespaceIds, NAMESPACE_TYPES, type NamespaceType } from './ids.js'
import { environment, launch, openResources } from './launch.js'
import { StepList } from './plan-builder.js'
import { addProcessSteps } from './process-steps.js'
import type { Child, EnterOptions } from './types.js'

/**
 * Runs a program inside the namespaces of a running process — the core of `exec` in a
 * container. By default it joins every namespace whose id differs from ours; joining the
 * mount namespace also puts the program in that process's root filesystem, and joining the
 * pid namespace makes it a member there (it is not pid 1).
 *
 * @example
 * ```ts
 * import { enter, readText } from '@ctr/namespaces'
 * const ps = await enter(container.pid, { argv: ['ps'], stdio: ['ignore', 'pipe', 'inherit'] })
 * console.log(await readText(ps.stdout))
 * ```
 */
export async function enter(pid: number, options: EnterOptions): Promise<Child> {
  if (!Number.isInteger(pid) || pid <= 0) throw new InvalidOptionsError('pid', 'must be a positive integer')
  const o = parseOptions(enterSchema, options)
  let types: NamespaceType[]
  if (o.namespaces) {
    types = o.namespaces
  } else {
    const [theirs, ours] = await Promise.all([namespaceIds(pid), namespaceIds('self')])
    types = NAMESPACE_TYPES.filter((t) => theirs[t] !== undefined && theirs[t] !== ours[t])
  }
  const targets: Partial<Record<NamespaceType, number>> = {}
  for (const t of types) targets[t] = pid

  const steps = new StepList()
  const cwd = o.cwd ?? '/'
  steps.add({ op: Op.Chdir, s: [cwd] }, { step: `chdir ${cwd}`, syscall: 'chdir', path: cwd })
  addProcessSteps(steps, o, o.user, true)

  const env = environment(o.env)
  const { stdio, joins, placement } = openResources(o, targets)
  const plan: SpawnPlan = {
    cloneFlags: 0,
    joins: joins.entries,
    twoStage: joins.twoStage,
    ...placement.planFields(),
    parentWrites: [],
    fds: stdio.moves,
    steps: steps.steps,
    exec: { path: o.argv[0]!, argv: o.argv, env: env.list, search: env.path },
  }
  return launch({ plan, steps, joins, placement, stdio, signal: o.signal })
}
