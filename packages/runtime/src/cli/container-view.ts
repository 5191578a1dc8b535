/**
 * A container seen from another process: what `ctr ps`, `stop`, `kill`, `exec`, `stats`,
 * `rm` and `commit` do to a container that some other process owns — a monitor (`ctr run
 * -d`), or a `ctr run` in another terminal.
 *
 * Design: there is no daemon and no control socket. Everything goes through what is on disk
 * and in the kernel:
 *
 * - the owner (monitor or `ctr run`) is the only writer of the state once the container runs:
 *   it records the exit in state.json and, with `--rm`, removes the container;
 * - signals go straight to the container's init, after checking its identity (pid + start
 *   time, so a recycled pid is never signalled); SIGKILL goes to every process of its cgroup;
 * - waiting for an exit is polling state.json until the owner has recorded it (or the owner
 *   and the container are both gone: a crash, which `Runtime.open` cleans up);
 * - `exec` joins the namespaces of the init pid with `enter()`, with the container's user,
 *   environment, capabilities, seccomp filter and cgroup, rebuilt from the state and the
 *   `ctr.json` written next to it at creation.
 *
 * This works the same whether the owner is a monitor or a foreground `ctr run`, and even when
 * the owner is wedged. A socket to the monitor would add a protocol, a server in every
 * monitor and a failure mode (monitor alive but unresponsive) for nothing signals cannot do.
 */
import { promises as fs, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cgroup, detect, type CgroupHost } from '@ctr/cgroups'
import { CAPABILITIES, enter, type Child, type SpawnOptions, type Stdio } from '@ctr/namespaces'
import type { ImageStore } from '@ctr/overlay-image'
import { isAlive, processStart } from '../container/process-identity.js'
import { releaseResources } from '../container/resources.js'
import type { ContainerState, StateStore } from '../container/state.js'
import { RuntimeError } from '../errors.js'
import { resolveUser } from '../image-config/user.js'
import { capabilitySets, resolveCapabilities } from '../security/capabilities.js'
import { compileSeccomp } from '../security/seccomp/compile.js'
import { defaultSeccompProfile } from '../security/seccomp/default-profile.js'
import type { SeccompProfile } from '../security/seccomp/profile.js'

/**
 * What `ctr` keeps next to state.json (`<state>/<id>/ctr.json`): the options the state does
 * not record but `exec` and `inspect` need, and whether the owner removes the container.
 */
export interface CliMeta {
  version: 1
  /** `--rm`: the owner deletes the container once it exits. */
  autoRemove: boolean
  /** `-d`: owned by a monitor. */
  detached: boolean
  security: {
    capAdd?: string[]
    capDrop?: string[]
    privileged?: boolean
    seccomp?: 'default' | 'unconfined' | Record<string, unknown>
  }
  ulimits?: Record<string, { soft: number; hard: number }>
  /** The limits and mounts asked for, as `inspect` shows them (HostConfig). */
  host: Record<string, unknown>
}

const META = 'ctr.json'

export async function writeMeta(states: StateStore, id: string, meta: CliMeta): Promise<void> {
  const file = path.join(states.dir(id), META)
  const tmp = `${file}.tmp-${process.pid}`
  await fs.writeFile(tmp, JSON.stringify(meta, null, 2), { mode: 0o600 })
  await fs.rename(tmp, file)
}

export async function readMeta(states: StateStore, id: string): Promise<CliMeta | undefined> {
  try {
    const m = JSON.parse(await fs.readFile(path.join(states.dir(id), META), 'utf8')) as CliMeta
    return m && m.version === 1 ? m : undefined
  } catch {
    return undefined
  }
}

/** Whether the container's init is alive (and still the process the state names). */
export function isRunning(s: ContainerState): boolean {
  return (s.status === 'running' || s.status === 'paused') && isAlive(s.process)
}

/** How a container ended as a shell status: the code, or 128 + the signal number. */
export function exitStatus(s: { exitCode?: number | null | undefined; signal?: string | null | undefined }): number {
  if (s.signal) return 128 + (signalNumber(s.signal) ?? 0)
  return s.exitCode ?? 0
}

export function signalNumber(sig: string): number | undefined {
  return (os.constants.signals as Record<string, number>)[sig]
}

/** `TERM`, `SIGTERM`, `sigterm` and `15` → `'SIGTERM'`; undefined when unknown. */
export function parseSignal(text: string): NodeJS.Signals | undefined {
  const t = text.trim().toUpperCase()
  if (/^\d+$/.test(t)) {
    const n = Number(t)
    const found = Object.entries(os.constants.signals).find(([, v]) => v === n)
    return found?.[0] as NodeJS.Signals | undefined
  }
  const name = t.startsWith('SIG') ? t : `SIG${t}`
  return name in os.constants.signals ? (name as NodeJS.Signals) : undefined
}

// ---- cgroups across processes ------------------------------------------------------------

/** A process's cgroup path per hierarchy, from /proc/<pid>/cgroup. */
function procCgroups(pid: number | 'self'): { controllers: string[]; path: string }[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [, ctl = '', p = '/'] = /^\d+:([^:]*):(.*)$/.exec(line) ?? []
        return { controllers: ctl.split(',').filter(Boolean), path: p }
      })
  } catch {
    return undefined
  }
}

/**
 * The cgroup host layout as process `pid` sees it: its own cgroups instead of ours, with
 * `strip` (`/<parent>/<name>`) taken off the end when `pid` is inside the container.
 */
async function hostAs(pid: number, strip: string | undefined): Promise<CgroupHost | undefined> {
  const base = await detect()
  const theirs = procCgroups(pid)
  const ours = procCgroups('self')
  if (!theirs || !ours) return undefined
  const find = (list: { controllers: string[]; path: string }[], controllers: string[] | undefined) =>
    list.find((l) => (controllers === undefined ? l.controllers.length === 0 : controllers.some((c) => l.controllers.includes(c))))?.path
  const map = (own: string, controllers: string[] | undefined): string | undefined => {
    // Only when our own view of /proc matches detect()'s (no cgroup namespace in between).
    if (find(ours, controllers) !== own) return undefined
    let p = find(theirs, controllers)
    if (p === undefined) return undefined
    if (strip) {
      if (!p.endsWith(strip)) return undefined
      p = p.slice(0, -strip.length) || '/'
    }
    return p
  }
  const host: CgroupHost = structuredClone(base)
  if (host.unified) {
    const own = map(host.unified.own, undefined)
    if (own === undefined && host.mode === 'unified') return undefined
    if (own !== undefined) host.unified.own = own
  }
  for (const h of host.legacy) {
    const own = map(h.own, h.controllers)
    if (own === undefined) return undefined
    h.own = own
  }
  return host
}

/**
 * The container's cgroup, also when it was created by a process in another cgroup than ours
 * (cgroups are made below their creator's own cgroup, and two shells are often in different
 * ones): found through the container's init, or its owner. Undefined when it is gone.
 */
export async function openCgroup(s: ContainerState): Promise<Cgroup | undefined> {
  const o = { parent: s.cgroup.parent }
  try {
    return await Cgroup.open(s.cgroup.name, o)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_CGROUP_NOT_FOUND') throw err
  }
  const candidates: [number, string | undefined][] = []
  if (s.process && isAlive(s.process)) candidates.push([s.process.pid, `/${s.cgroup.parent}/${s.cgroup.name}`])
  if (isAlive(s.owner)) candidates.push([s.owner.pid, undefined])
  for (const [pid, strip] of candidates) {
    const host = await hostAs(pid, strip)
    if (!host) continue
    try {
      return await Cgroup.open(s.cgroup.name, { ...o, host })
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_CGROUP_NOT_FOUND') throw err
    }
  }
  return undefined
}

// ---- signals and waiting -----------------------------------------------------------------

/**
 * Sends a signal to the container: SIGKILL to every process of its cgroup (as
 * `Container.kill`), any other signal to its init, whose identity is checked first.
 */
export async function signalContainer(s: ContainerState, signal: NodeJS.Signals): Promise<void> {
  if (!isRunning(s)) throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} is not running`)
  if (signal === 'SIGKILL') {
    const cg = await openCgroup(s)
    if (cg) {
      if (s.status === 'paused') await cg.thaw().catch(() => {})
      await cg.kill('SIGKILL')
      return
    }
  }
  const p = s.process!
  if (processStart(p.pid) !== p.start) throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} is not running`)
  try {
    process.kill(p.pid, signal)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
  }
}

/** How a wait ended: exit recorded, container removed (by its owner), owner gone without recording, or still running. */
export type WaitOutcome = { kind: 'exited'; state: ContainerState } | { kind: 'removed' } | { kind: 'dead'; state: ContainerState } | { kind: 'timeout'; state: ContainerState }

/** Polls the state until the owner has recorded the exit (or removed the container). */
export async function waitForExit(states: StateStore, id: string, timeoutMs: number): Promise<WaitOutcome> {
  const deadline = Date.now() + timeoutMs
  let delay = 20
  for (;;) {
    const s = await states.read(id)
    if (!s) {
      // Between the owner's removal of state.json and of its directory, or a torn read.
      try {
        await fs.access(states.dir(id))
      } catch {
        return { kind: 'removed' }
      }
    } else {
      if (s.status === 'exited') return { kind: 'exited', state: s }
      if (!isAlive(s.owner) && !isAlive(s.process)) return { kind: 'dead', state: s }
      if (Date.now() >= deadline) return { kind: 'timeout', state: s }
    }
    if (!s && Date.now() >= deadline) return { kind: 'removed' }
    await sleep(delay)
    delay = Math.min(delay * 2, 100)
  }
}

/** `docker stop`: SIGTERM (or `signal`) to init, SIGKILL to everything after `timeoutSec`; waits for the recorded exit. */
export async function stopContainer(states: StateStore, s: ContainerState, o: { timeoutSec: number; signal?: NodeJS.Signals }): Promise<WaitOutcome> {
  if (!isRunning(s)) return s.status === 'exited' ? { kind: 'exited', state: s } : { kind: 'dead', state: s }
  const cg = s.status === 'paused' ? await openCgroup(s) : undefined
  await cg?.thaw().catch(() => {})
  await signalContainer(s, o.signal ?? 'SIGTERM').catch(() => {})
  let r = await waitForExit(states, s.id, o.timeoutSec * 1000)
  if (r.kind !== 'timeout') return r
  await signalContainer(r.state, 'SIGKILL').catch(() => {})
  r = await waitForExit(states, s.id, 10_000)
  if (r.kind === 'timeout') throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} did not exit after SIGKILL (owner pid ${s.owner.pid})`)
  return r
}

/**
 * `docker rm`: releases a container's cgroup, snapshot and state. A running one needs `force`
 * (killed first). A container whose owner removes it (`--rm`) is left to its owner.
 */
export async function removeContainer(states: StateStore, store: ImageStore, s: ContainerState, o: { force: boolean }): Promise<void> {
  let state = s
  // Opened while the container (or its owner) still runs: afterwards nothing may be left to
  // find it by when it was created from another cgroup than ours.
  const cgroup = await openCgroup(state)
  if (isRunning(state)) {
    if (!o.force) throw new RuntimeError('ERR_RUNTIME_STATE', `cannot remove container ${s.name}: it is ${s.status}; stop it first or use rm -f`)
    if (cgroup) {
      if (state.status === 'paused') await cgroup.thaw().catch(() => {})
      await cgroup.kill('SIGKILL').catch(() => {})
    } else {
      await signalContainer(state, 'SIGKILL').catch(() => {})
    }
    const r = await waitForExit(states, s.id, 15_000)
    if (r.kind === 'removed') return
    if (r.kind === 'timeout') throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} did not exit after SIGKILL`)
    state = r.state
  }
  if (isAlive(state.owner) && state.status !== 'created') {
    const meta = await readMeta(states, s.id)
    if (meta?.autoRemove) {
      // Its owner removes it right after recording the exit: let it, rather than race it.
      const r = await waitForExit(states, s.id, 10_000)
      if (r.kind === 'removed') return
    }
  }
  if (state.status === 'created' && isAlive(state.owner)) {
    throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} is being created or started by process ${state.owner.pid}`)
  }
  await releaseResources({
    id: state.id,
    store,
    states,
    ...(cgroup ? { cgroup } : { cgroupName: state.cgroup.name, cgroupParent: state.cgroup.parent }),
    snapshot: state.snapshot,
    stateDir: true,
  })
}

// ---- exec --------------------------------------------------------------------------------

export interface ExecInOptions {
  argv: string[]
  env?: Record<string, string>
  user?: string
  workdir?: string
  stdio: [Stdio, Stdio, Stdio]
  controllingTerminal?: number
}

function hexCaps(mask: string | undefined): string[] {
  if (!mask) return []
  const n = BigInt(`0x${mask}`)
  return CAPABILITIES.filter((_c, i) => (n >> BigInt(i)) & 1n)
}

/** The process settings of `exec`, from ctr.json, or else read off the init process itself. */
async function securityOf(states: StateStore, s: ContainerState): Promise<Pick<SpawnOptions, 'capabilities' | 'noNewPrivileges' | 'seccomp' | 'rlimits'>> {
  const meta = await readMeta(states, s.id)
  if (meta) {
    const sec = meta.security
    const caps = resolveCapabilities({ ...(sec.capAdd ? { capAdd: sec.capAdd } : {}), ...(sec.capDrop ? { capDrop: sec.capDrop } : {}), ...(sec.privileged ? { privileged: true } : {}) })
    const seccomp = sec.privileged || sec.seccomp === 'unconfined'
      ? undefined
      : compileSeccomp(typeof sec.seccomp === 'object' ? (sec.seccomp as unknown as SeccompProfile) : defaultSeccompProfile(), { caps, field: 'seccomp' })
    return {
      capabilities: capabilitySets(caps),
      noNewPrivileges: !sec.privileged,
      ...(seccomp ? { seccomp: { filter: seccomp.program, flags: seccomp.flags } } : {}),
      ...(meta.ulimits ? { rlimits: meta.ulimits as SpawnOptions['rlimits'] } : {}),
    }
  }
  // A container made by the library: copy what its init runs with.
  const status = readFileSync(`/proc/${s.process!.pid}/status`, 'utf8')
  const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(status)?.[1]
  const bounding = hexCaps(field('CapBnd'))
  const caps = resolveCapabilities({ capDrop: ['ALL'], capAdd: bounding.length ? bounding : [] })
  const seccomp = field('Seccomp') === '2' ? compileSeccomp(defaultSeccompProfile(), { caps, field: 'seccomp' }) : undefined
  return {
    capabilities: { bounding, effective: hexCaps(field('CapEff')), permitted: hexCaps(field('CapPrm')), inheritable: hexCaps(field('CapInh')), ambient: hexCaps(field('CapAmb')) },
    noNewPrivileges: field('NoNewPrivs') === '1',
    ...(seccomp ? { seccomp: { filter: seccomp.program, flags: seccomp.flags } } : {}),
  }
}

/**
 * Starts a process inside a running container owned by another process: its namespaces,
 * cgroup, user, environment, capabilities and seccomp filter (as `Container.exec`).
 */
export async function execIn(states: StateStore, s: ContainerState, o: ExecInOptions): Promise<Child> {
  if (!isRunning(s) || s.status !== 'running') throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} is ${s.status === 'running' ? 'not running' : s.status}: exec needs a running container`)
  const env: Record<string, string> = {}
  for (const kv of s.config.env) {
    const i = kv.indexOf('=')
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1)
  }
  Object.assign(env, o.env)
  let user = s.config.user
  if (o.user !== undefined) {
    // The container's root as its init sees it: the overlay may be mounted only in the
    // container's mount namespace, not at state.rootfs on the host.
    const r = await resolveUser(`/proc/${s.process!.pid}/root`, o.user)
    user = { uid: r.uid, gid: r.gid, groups: r.additionalGids }
  }
  const security = await securityOf(states, s)
  const cg = await openCgroup(s)
  const pid = s.process!.pid
  // The pid was checked above; check again right before joining its namespaces.
  if (processStart(pid) !== s.process!.start) throw new RuntimeError('ERR_RUNTIME_STATE', `container ${s.name} is not running`)
  return enter(pid, {
    argv: o.argv,
    env,
    cwd: o.workdir ?? s.config.cwd ?? '/',
    user,
    ...security,
    ...(cg ? { cgroup: cg.placement } : {}),
    stdio: o.stdio,
    ...(o.controllingTerminal !== undefined ? { controllingTerminal: o.controllingTerminal } : {}),
  })
}
