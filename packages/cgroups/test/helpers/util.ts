/**
 * Shared helpers for the @ctr/cgroups tests: unique cgroup names, cgroups that are always
 * destroyed, children that are always killed and recorded (the global teardown checks that
 * none survived), and where a cgroup lives in each hierarchy.
 */
import fs from 'node:fs'
import path from 'node:path'
import { inject } from 'vitest'
import { spawn, readText } from '@ctr/namespaces'
import { Cgroup, CgroupError, detect, type CgroupHost } from '../../src/index.js'
import { procStat } from './proc.js'

export * from './proc.js'
export { readText }

export type SpawnOpts = Parameters<typeof spawn>[0]
export type Child = Awaited<ReturnType<typeof spawn>>
export type Limits = NonNullable<Parameters<typeof Cgroup.create>[1]>

export const BUSYBOX = '/bin/busybox'
export const MiB = 2 ** 20

let counter = 0
/** A name no other test (or run) uses: `ctr-test-<run id>-<worker pid>-<n>`. */
export function uniqueName(): string {
  return `ctr-test-${inject('runId')}-${process.pid}-${++counter}`
}

let hostPromise: Promise<CgroupHost> | undefined
export function host(): Promise<CgroupHost> {
  return (hostPromise ??= detect())
}

const created = new Set<Cgroup>()

/** `Cgroup.create` with a unique name; {@link cleanup} removes it if the test did not. */
export async function createCgroup(limits?: Limits, options?: Parameters<typeof Cgroup.create>[2]): Promise<Cgroup> {
  const cg = await Cgroup.create(uniqueName(), limits, options)
  created.add(cg)
  return cg
}

/** Creates a cgroup with a unique name, runs `fn`, and always destroys the cgroup. */
export async function withCgroup<T>(limits: Limits | undefined, fn: (cg: Cgroup) => Promise<T>): Promise<T> {
  const cg = await createCgroup(limits)
  let result: T
  try {
    result = await fn(cg)
  } catch (err) {
    // the test's own failure is the one to report; cleanup() retries the destroy after a thaw
    await cg.destroy().catch(() => undefined)
    throw err
  }
  await cg.destroy()
  return result
}

/**
 * afterEach: whatever a failed test left — thaws its cgroups (a frozen task cannot die),
 * kills and awaits its children, destroys its cgroups. Runs only on the test's own cgroups.
 */
export async function cleanup(): Promise<void> {
  const problems: string[] = []
  for (const cg of created) {
    if (!allDirs(cg).some((d) => fs.existsSync(d))) continue
    await cg.thaw().catch(() => undefined)
    for (const d of allDirs(cg)) {
      // in case thaw() itself is what failed: this test's own cgroup, written directly
      for (const [file, value] of [['freezer.state', 'THAWED'], ['cgroup.freeze', '0']] as const) {
        try {
          if (fs.existsSync(path.join(d, file))) fs.writeFileSync(path.join(d, file), value)
        } catch {
          // not a freezer hierarchy
        }
      }
    }
  }
  await reapAll()
  for (const cg of created) {
    if (!allDirs(cg).some((d) => fs.existsSync(d))) continue
    try {
      await cg.destroy()
    } catch (err) {
      problems.push(`${cg.name}: ${String(err)}`)
    }
  }
  created.clear()
  if (problems.length > 0) throw new Error(`cleanup could not destroy: ${problems.join('; ')}`)
}

// ---------------------------------------------------------------- children

/** Records a child's pid and start time in the run's pid log (checked after the run). */
export function track<T extends { pid: number }>(child: T): T {
  const st = procStat(child.pid)
  if (st) fs.appendFileSync(inject('pidLog'), `${st.pid} ${st.starttime}\n`)
  return child
}

const started = new Set<Child>()

/** `spawn` (stdio ignored unless given) + {@link track}; {@link reapAll} kills what is left. */
export async function start(opts: SpawnOpts): Promise<Child> {
  const child = track(await spawn({ stdio: ['ignore', 'ignore', 'ignore'], ...opts }))
  started.add(child)
  void child.exited.then(() => started.delete(child))
  return child
}

/** Starts `argv` inside `cg` (placed before exec). */
export function startIn(cg: Cgroup, argv: string[], opts: Partial<SpawnOpts> = {}): Promise<Child> {
  return start({ argv, cgroup: cg.placement, ...opts })
}

export interface RunResult {
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Spawns with stdout and stderr piped and waits for the exit. */
export async function run(opts: SpawnOpts): Promise<RunResult> {
  const child = await start({ stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  try {
    const [stdout, stderr, ex] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
    return { pid: child.pid, code: ex.code, signal: ex.signal, stdout, stderr }
  } finally {
    child.kill('SIGKILL')
  }
}

/** The child's exit status, or 'still running' after `ms` (a frozen task never exits). */
export async function exitWithin(child: Child, ms = 5000): Promise<Awaited<Child['exited']> | 'still running'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'still running'>((r) => (timer = setTimeout(() => r('still running'), ms)))
  try {
    return await Promise.race([child.exited, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Kills (SIGKILL) and awaits (up to 10 s) every child this file started that is still running. */
export async function reapAll(): Promise<void> {
  const all = [...started]
  for (const c of all) c.kill('SIGKILL')
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 10_000)))
  const r = await Promise.race([Promise.all(all.map((c) => c.exited)), timeout])
  clearTimeout(timer)
  if (r === 'timeout') throw new Error(`children did not exit after SIGKILL: ${all.filter((c) => started.has(c)).map((c) => c.pid).join(' ')}`)
}

// ---------------------------------------------------------------- where a cgroup lives

/** The v1 hierarchy a directory belongs to. */
export function hierarchyOf(h: CgroupHost, dir: string) {
  return h.legacy.find((l) => dir === l.mount || dir.startsWith(l.mount + '/'))
}

/** Every directory of the cgroup (unified and legacy). */
export function allDirs(cg: Cgroup): string[] {
  return [...(cg.paths.unified ? [cg.paths.unified] : []), ...new Set(Object.values(cg.paths.legacy))]
}

/**
 * What /proc/<pid>/cgroup must say for a process in `cg`: per hierarchy (a controller of it,
 * or null for v2) the path relative to the mount.
 */
export function expectedMembership(h: CgroupHost, cg: Cgroup): { controller: string | null; path: string }[] {
  const out: { controller: string | null; path: string }[] = []
  if (cg.paths.unified && h.unified) out.push({ controller: null, path: path.posix.join('/', path.relative(h.unified.mount, cg.paths.unified)) })
  for (const dir of new Set(Object.values(cg.paths.legacy))) {
    const hier = hierarchyOf(h, dir)
    if (!hier) throw new Error(`${dir} is in no v1 hierarchy that detect() found`)
    out.push({ controller: hier.controllers[0]!, path: path.posix.join('/', path.relative(hier.mount, dir)) })
  }
  return out
}

/** The v1 hierarchy directory of `cg` that holds controller `c`, if any. */
export function legacyDirFor(h: CgroupHost, cg: Cgroup, c: string): string | undefined {
  const hier = h.legacy.find((l) => l.controllers.includes(c))
  if (!hier) return undefined
  return Object.values(cg.paths.legacy).find((d) => d.startsWith(hier.mount + '/'))
}

/** The directory holding `file` for `cg` (v2: the unified dir; v1: the controller's hierarchy). */
export function controlFile(h: CgroupHost, cg: Cgroup, v1controller: string, file: string): string | undefined {
  if (h.mode === 'unified') return cg.paths.unified && path.join(cg.paths.unified, file)
  const d = legacyDirFor(h, cg, v1controller)
  return d && path.join(d, file)
}

export function readFileTrim(file: string): string {
  return fs.readFileSync(file, 'utf8').trim()
}

// ---------------------------------------------------------------- errors

/** The CgroupError that `p` rejects with (fails the test if it resolves or rejects otherwise). */
export async function cgroupError(p: Promise<unknown>): Promise<CgroupError> {
  let result: unknown
  try {
    result = await p
  } catch (err) {
    if (!(err instanceof CgroupError)) throw new Error(`expected a CgroupError, got ${String(err)}`, { cause: err })
    return err
  }
  throw new Error(`expected a CgroupError, but it resolved with ${String(result)}`)
}

/** v1 hierarchies and the unified one, as (mount, own absolute dir). */
export function ownDirs(h: CgroupHost): { mount: string; own: string }[] {
  const dir = (mount: string, own: string) => path.join(mount, own).replace(/(.)\/+$/, '$1')
  const out = h.legacy.map((l) => ({ mount: l.mount, own: dir(l.mount, l.own) }))
  if (h.unified) out.push({ mount: h.unified.mount, own: dir(h.unified.mount, h.unified.own) })
  return out
}
