/**
 * bench/run — run-to-exit of `true` in a full container from a cached image, and containers
 * per second one at a time and N at once, side by side in one run with `runc run` on the same
 * root filesystem and `podman run --rm --network=none` on the same image.
 *
 *   node bench/dist/run/index.js [--iterations N] [--podman-iterations N] [--warmup N] [--rounds N]
 *                                [--concurrency N] [--skip ours,runc,podman] [--no-profile] [--json FILE]
 *
 * Every tool is measured in `--rounds` interleaved blocks (the first tool rotates each round),
 * sequential blocks first, then concurrent ones, so a burst of load on a shared machine hits
 * every tool alike. Afterwards, unless `--no-profile`, ours runs once more with its phases
 * timed (the runtime's own `timings`, plus the image store, state store, cgroup and container
 * methods wrapped from outside) to show where the time goes.
 */
import { spawn as cpSpawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { x as untar } from 'tar'
import { Cgroup } from '@ctr/cgroups'
import { spawn, type SpawnOptions } from '@ctr/namespaces'
import { sharedFixtures, type Fixtures } from '@ctr/registry-harness'
import {
  capabilitySets, compileSeccomp, Container, defaultSeccompProfile, parseImageName, resolveCapabilities, Runtime, run, seccompFilter, storeRef,
} from '@ctr/runtime'

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  iterations: number
  podmanIterations: number
  warmup: number
  rounds: number
  concurrency: number
  skip: Set<string>
  profile: boolean
  json: string | undefined
  stateDir: string | undefined
  cooldownMs: number
}

const USAGE = `usage: node bench/dist/run/index.js [options]
  --iterations N          measured runs per tool and mode, ours and runc (default 200)
  --podman-iterations N   the same for podman, which is slower (default 60)
  --warmup N              unmeasured runs per tool before measuring (default 10)
  --rounds N              interleaved blocks the iterations are split into (default 4)
  --concurrency N         containers at once in the concurrent mode (default 8)
  --skip LIST             comma-separated: ours,runc,podman
  --no-profile            skip the breakdown of ours by phase
  --json FILE             also write the results (with every sample) as JSON
  --cooldown MS           pause before each block (default 0), e.g. so that the kernel's deferred
                          work left by the previous block (namespace and cgroup teardown in
                          kworkers) does not land on the next tool's runs
  --state-dir DIR         where every tool keeps its volatile state (ours' stateRoot, runc --root,
                          podman --runroot); default: a tmpfs, as /run is on a systemd host
`

function parseArgs(argv: string[]): Options {
  const o: Options = { iterations: 200, podmanIterations: 60, warmup: 10, rounds: 4, concurrency: 8, skip: new Set(), profile: true, json: undefined, stateDir: undefined, cooldownMs: 0 }
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v)
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}\n${USAGE}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    const flag = eq > 0 ? a.slice(0, eq) : a
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i])
    switch (flag) {
      case '--iterations': case '-n': o.iterations = int(flag, value(), 1); break
      case '--podman-iterations': o.podmanIterations = int(flag, value(), 1); break
      case '--warmup': o.warmup = int(flag, value(), 0); break
      case '--rounds': o.rounds = int(flag, value(), 1); break
      case '--concurrency': case '-c': o.concurrency = int(flag, value(), 1); break
      case '--skip': for (const s of (value() ?? '').split(',')) if (s.trim()) o.skip.add(s.trim()); break
      case '--no-profile': o.profile = false; break
      case '--json': o.json = value(); break
      case '--state-dir': o.stateDir = value(); break
      case '--cooldown': o.cooldownMs = int(flag, value(), 0); break
      case '--help': case '-h': process.stdout.write(USAGE); process.exit(0)
      // falls through (process.exit never returns)
      default: throw new Error(`unknown argument ${a}\n${USAGE}`)
    }
  }
  return o
}

// ---------------------------------------------------------------------------------------------
// measuring

/** One tool: how to run one container (worker `w` of the concurrent mode), and its samples. */
interface Tool {
  key: string
  label: string
  iterations: number
  once: (worker: number) => Promise<void>
  /**
   * Waits for work a tool leaves running after a run returns (ours: the container's removal,
   * which run() finishes in the background). Inside each block's wall time, so runs/s counts it.
   */
  settle?: () => Promise<void>
  seq: number[]
  seqWallMs: number
  conc: number[]
  concWallMs: number
  /** CPU time (user + system) of this process during the measured runs, µs. */
  seqCpuUs: number
  concCpuUs: number
  error?: string
}

function tool(key: string, label: string, iterations: number, once: (worker: number) => Promise<void>): Tool {
  return { key, label, iterations, once, seq: [], seqWallMs: 0, conc: [], concWallMs: 0, seqCpuUs: 0, concCpuUs: 0 }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

function blockSize(total: number, rounds: number, r: number): number {
  return Math.floor(total / rounds) + (r < total % rounds ? 1 : 0)
}

/** `n` runs one after the other (after `warmup` unmeasured ones). */
async function sequentialBlock(t: Tool, warmup: number, n: number): Promise<void> {
  for (let i = 0; i < warmup; i++) await t.once(0)
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const s = performance.now()
    await t.once(0)
    t.seq.push(performance.now() - s)
  }
  await t.settle?.()
  const cpu = process.cpuUsage(cpu0)
  t.seqCpuUs += cpu.user + cpu.system
  t.seqWallMs += performance.now() - t0
}

/** `n` runs by `c` workers, each starting its next run as soon as its last one exited. */
async function concurrentBlock(t: Tool, c: number, n: number): Promise<void> {
  let next = 0
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async (_, w) => {
      while (next < n) {
        next++
        const s = performance.now()
        await t.once(w)
        t.conc.push(performance.now() - s)
      }
    }),
  )
  await t.settle?.()
  const cpu = process.cpuUsage(cpu0)
  t.concCpuUs += cpu.user + cpu.system
  t.concWallMs += performance.now() - t0
}

async function guarded(t: Tool, f: () => Promise<void>): Promise<void> {
  if (t.error !== undefined) return
  try {
    await f()
  } catch (e) {
    t.error = message(e)
    process.stderr.write(`  ${t.label}: FAILED: ${t.error}\n`)
  }
}

async function interleaved(o: Options, tools: Tool[]): Promise<void> {
  for (let r = 0; r < o.rounds; r++) {
    process.stderr.write(`  round ${r + 1}/${o.rounds}: one at a time\n`)
    for (let i = 0; i < tools.length; i++) {
      const t = tools[(i + r) % tools.length]!
      await sleep(o.cooldownMs)
      await guarded(t, () => sequentialBlock(t, r === 0 ? o.warmup : Math.min(o.warmup, 2), blockSize(t.iterations, o.rounds, r)))
    }
    process.stderr.write(`  round ${r + 1}/${o.rounds}: ${o.concurrency} at once\n`)
    for (let i = 0; i < tools.length; i++) {
      const t = tools[(i + r) % tools.length]!
      await sleep(o.cooldownMs)
      await guarded(t, () => concurrentBlock(t, o.concurrency, blockSize(t.iterations, o.rounds, r)))
    }
  }
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

interface Summary {
  n: number
  p50Ms: number
  p99Ms: number
  meanMs: number
  perSecond: number
}

function summarize(samples: number[], wallMs: number): Summary | undefined {
  if (samples.length === 0) return undefined
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    n: samples.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: samples.reduce((a, b) => a + b, 0) / samples.length,
    perSecond: samples.length / (wallMs / 1000),
  }
}

// ---------------------------------------------------------------------------------------------
// processes

function runToExit(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = cpSpawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${path.basename(file)} ${args.slice(-3).join(' ')}: exited with ${signal ?? `code ${code}`}: ${stderr.trim().slice(0, 400)}`))
    })
  })
}

async function capture(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = cpSpawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function which(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir, cmd)
    if (await fs.access(p).then(() => true, () => false)) return p
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// cgroups of other tools: below our own cgroup, and removed afterwards

interface OwnCgroup {
  /** Hierarchy directory → our own cgroup's path in it. */
  hierarchies: { dir: string; own: string }[]
}

async function ownCgroup(): Promise<OwnCgroup> {
  const hierarchies: OwnCgroup['hierarchies'] = []
  for (const line of (await fs.readFile('/proc/self/cgroup', 'utf8')).split('\n').filter(Boolean)) {
    const [, controllers, own] = line.split(':') as [string, string, string]
    const name = controllers === '' ? 'unified' : controllers.replace(/^name=/, '')
    const dir = path.join('/sys/fs/cgroup', name)
    if (await fs.access(dir).then(() => true, () => false)) hierarchies.push({ dir, own })
  }
  return { hierarchies }
}

/**
 * One absolute cgroup path below our own cgroup in every hierarchy (podman takes a single
 * `--cgroup-parent`): our deepest own path plus `leaf`, if every other own path is a prefix.
 */
function commonParent(own: OwnCgroup, leaf: string): string | undefined {
  const deepest = own.hierarchies.map((h) => h.own).sort((a, b) => b.length - a.length)[0] ?? '/'
  const ok = own.hierarchies.every((h) => h.own === '/' || deepest === h.own || deepest.startsWith(`${h.own}/`))
  return ok ? path.posix.join(deepest, leaf) : undefined
}

/** The directories of `cgPath` (and its missing ancestors) in every hierarchy that do not exist yet. */
async function missingDirs(own: OwnCgroup, cgPath: string): Promise<string[]> {
  const out: string[] = []
  for (const h of own.hierarchies) {
    const parts = cgPath.split('/').filter(Boolean)
    for (let i = 1; i <= parts.length; i++) {
      const d = path.join(h.dir, ...parts.slice(0, i))
      if (!(await fs.access(d).then(() => true, () => false))) out.push(d)
    }
  }
  return out
}

/** rmdir (never rm -r) what we created, deepest first, with its empty leftovers below. */
async function removeDirs(dirs: string[]): Promise<string[]> {
  const notes: string[] = []
  const all = new Set<string>()
  for (const d of dirs) {
    all.add(d)
    const walk = async (p: string): Promise<void> => {
      for (const e of await fs.readdir(p, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) {
          all.add(path.join(p, e.name))
          await walk(path.join(p, e.name))
        }
      }
    }
    await walk(d)
  }
  for (const d of [...all].sort((a, b) => b.length - a.length)) {
    await fs.rmdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') notes.push(`could not remove cgroup ${d}: ${e.code}`)
    })
  }
  return notes
}

// ---------------------------------------------------------------------------------------------
// where the tools keep their volatile state

const TMPFS_MAGIC = 0x01021994

interface StateDir {
  dir: string
  fs: string
  /** Made by this run, so removed at the end. */
  owned: boolean
}

async function isTmpfs(dir: string): Promise<boolean> {
  return (await fs.statfs(dir)).type === TMPFS_MAGIC
}

/**
 * Every runtime keeps its per-container state under /run (ours /run/ctr, runc /run/runc,
 * podman /run/containers), which a systemd host mounts as tmpfs. Where this machine's temp
 * directory is not a tmpfs, the tools get a directory on /dev/shm instead, so each pays what
 * it pays on a usual host rather than this disk's metadata costs (on an ext4 without a
 * journal, every new inode scans past the recently deleted ones).
 */
async function stateDirFor(o: Options, tmp: string): Promise<StateDir> {
  if (o.stateDir !== undefined) {
    await fs.mkdir(o.stateDir, { recursive: true })
    return { dir: o.stateDir, fs: (await isTmpfs(o.stateDir)) ? 'tmpfs, given' : 'not tmpfs, given', owned: false }
  }
  if (await isTmpfs(tmp)) return { dir: path.join(tmp, 'state'), fs: 'tmpfs', owned: false }
  if (await isTmpfs('/dev/shm').catch(() => false)) {
    return { dir: await fs.mkdtemp('/dev/shm/ctr-bench-run-'), fs: `tmpfs; ${os.tmpdir()} is not`, owned: true }
  }
  return { dir: path.join(tmp, 'state'), fs: 'not tmpfs: no tmpfs found', owned: false }
}

// ---------------------------------------------------------------------------------------------
// the tools

const MEMORY = 64 * 1024 * 1024

async function oursTool(o: Options, image: string, tmp: string, stateDir: string): Promise<{ tool: Tool; runtime: Runtime }> {
  const runtime = await Runtime.open({ root: path.join(tmp, 'ours', 'store'), stateRoot: path.join(stateDir, 'ours'), cgroupParent: `ctr-bench-run-${process.pid}` })
  const once = async (): Promise<void> => {
    const r = await run({ runtime, image, cmd: ['true'], memory: MEMORY, network: 'none', stdout: 'ignore', stderr: 'ignore' })
    if (r.exitCode !== 0) throw new Error(`true exited with ${r.signal ?? `code ${r.exitCode}`}`)
  }
  await once() // imports and unpacks the image: "from a cached image" from here on
  await runtime.idle()
  const t = tool('ours', 'ours: run() pid+mnt+uts+ipc+net, cgroup 64m, overlay, seccomp', o.iterations, once)
  t.settle = () => runtime.idle()
  return { tool: t, runtime }
}

interface RuncSetup {
  bundles: string[]
  state: string
  cgroups: string[]
  version: string
}

/** One bundle per concurrent worker (its own cgroupsPath), all on the same rootfs. */
async function prepareRunc(o: Options, tmp: string, rootfs: string, stateDir: string): Promise<RuncSetup> {
  const v = await capture('runc', ['--version'])
  if (v.code !== 0) throw new Error(`runc --version: ${v.stderr.trim()}`)
  const state = path.join(stateDir, 'runc')
  await fs.mkdir(state, { recursive: true })
  const bundles: string[] = []
  const cgroups: string[] = []
  for (let w = 0; w < o.concurrency; w++) {
    const bundle = path.join(tmp, `runc-bundle-${w}`)
    await fs.mkdir(bundle, { recursive: true })
    const spec = await capture('runc', ['spec', '--bundle', bundle])
    if (spec.code !== 0) throw new Error(`runc spec: ${spec.stderr.trim()}`)
    const file = path.join(bundle, 'config.json')
    const config = JSON.parse(await fs.readFile(file, 'utf8')) as {
      process: { terminal?: boolean; args?: string[] }
      root?: { path: string; readonly?: boolean }
      linux: { namespaces?: { type: string }[]; cgroupsPath?: string; resources?: Record<string, unknown> }
    }
    config.process.terminal = false
    config.process.args = ['/bin/true']
    config.root = { path: rootfs, readonly: false }
    config.linux.namespaces = [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network' }]
    config.linux.resources = { ...config.linux.resources, memory: { limit: MEMORY } }
    // Relative: below runc's (our) own cgroup in every hierarchy; runc removes it on exit.
    config.linux.cgroupsPath = `ctr-bench-runc-${process.pid}-${w}`
    cgroups.push(config.linux.cgroupsPath)
    await fs.writeFile(file, JSON.stringify(config, null, 2))
    bundles.push(bundle)
  }
  return { bundles, state, cgroups, version: v.stdout.split('\n')[0]!.replace(/^runc version\s*/, '').trim() }
}

function runcTool(o: Options, s: RuncSetup): Tool {
  let seq = 0
  return tool('runc', `runc run (${s.version}) pid+mnt+uts+ipc+net, cgroup 64m`, o.iterations, (w) =>
    runToExit('runc', ['--root', s.state, 'run', '--bundle', s.bundles[w]!, `ctr-bench-${process.pid}-${seq++}`]))
}

async function runcCleanup(s: RuncSetup, own: OwnCgroup): Promise<string[]> {
  const notes: string[] = []
  const list = await capture('runc', ['--root', s.state, 'list', '-q']).catch(() => undefined)
  for (const id of (list?.stdout ?? '').split('\n').map((x) => x.trim()).filter(Boolean)) {
    await capture('runc', ['--root', s.state, 'delete', '-f', id]).catch(() => undefined)
    notes.push(`deleted leftover runc container ${id}`)
  }
  const dirs = own.hierarchies.flatMap((h) => s.cgroups.map((c) => path.join(h.dir, h.own, c)))
  const present = (await Promise.all(dirs.map(async (d) => ((await fs.access(d).then(() => true, () => false)) ? d : undefined)))).filter((d): d is string => d !== undefined)
  for (const d of present) notes.push(`removing leftover cgroup ${d}`)
  return [...notes, ...(await removeDirs(present))]
}

interface PodmanSetup {
  global: string[]
  imageId: string
  cgroupParent: string
  createdCgroups: string[]
  version: string
  tmp: string
}

const PODMAN_ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096']

/** Podman with its own storage and state under `dir`, cgroupfs (hybrid cgroups here), no event log. */
function podmanSetup(tmp: string, stateDir: string): PodmanSetup {
  const dir = path.join(tmp, 'podman')
  const global = ['--root', path.join(dir, 'root'), '--runroot', path.join(stateDir, 'podman'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'none']
  return { global, imageId: '', cgroupParent: '', createdCgroups: [], version: '', tmp: dir }
}

async function preparePodman(s: PodmanSetup, layout: string, own: OwnCgroup): Promise<void> {
  if (!(await which('podman'))) {
    process.stderr.write('  podman is missing: apt-get install -y podman\n')
    const r = await capture('apt-get', ['install', '-y', '-q', 'podman'])
    if (r.code !== 0) throw new Error(`apt-get install podman failed: ${(r.stderr || r.stdout).trim().slice(-400)}`)
  }
  s.version = (await capture('podman', ['--version'])).stdout.trim().replace(/^podman version\s*/, '')
  // podman names the image after the layout's path, which must then be lower case.
  const pull = await capture('podman', [...s.global, 'pull', '-q', `oci:${layout}`])
  if (pull.code !== 0) throw new Error(`podman pull oci:${layout}: ${pull.stderr.trim()}`)
  s.imageId = pull.stdout.trim().split('\n').pop()!
  // Its default cgroup parent is /libpod_parent at the top of every hierarchy: not ours to use.
  const parent = commonParent(own, `ctr-bench-podman-${process.pid}`)
  if (!parent) throw new Error('no single cgroup path lies below our own cgroup in every hierarchy (needed for --cgroup-parent)')
  s.cgroupParent = parent
  s.createdCgroups = await missingDirs(own, parent)
}

function podmanTool(o: Options, s: PodmanSetup): Tool {
  const args = [
    ...s.global, 'run', '--rm', '--network=none', '--memory', String(MEMORY),
    '--cgroups=no-conmon', `--cgroup-parent=${s.cgroupParent}`, ...PODMAN_ULIMITS, s.imageId, 'true',
  ]
  return tool('podman', `podman run --rm --network=none (${s.version}, runc), cgroup 64m`, o.podmanIterations, () => runToExit('podman', args))
}

async function podmanCleanup(s: PodmanSetup): Promise<string[]> {
  const notes: string[] = []
  if (!(await fs.access(s.tmp).then(() => true, () => false))) return notes
  const ps = await capture('podman', [...s.global, 'ps', '-aq']).catch(() => undefined)
  for (const id of (ps?.stdout ?? '').split('\n').map((x) => x.trim()).filter(Boolean)) {
    await capture('podman', [...s.global, 'rm', '-f', id]).catch(() => undefined)
    notes.push(`removed leftover podman container ${id}`)
  }
  // Removes its images and unmounts its storage (containers/storage keeps its overlay
  // directory bind-mounted on itself) before the directory goes.
  await capture('podman', [...s.global, 'system', 'reset', '--force']).catch(() => undefined)
  for (const m of (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(`${s.tmp}/`)).reverse()) {
    const r = await capture('umount', [m]).catch(() => undefined)
    notes.push(r?.code === 0 ? `unmounted podman's ${m}` : `could not unmount ${m}: ${r?.stderr.trim()}`)
  }
  return [...notes, ...(await removeDirs(s.createdCgroups))]
}

// ---------------------------------------------------------------------------------------------
// where ours spends its time

type Phases = Map<string, number[]>

/** Wraps `obj[name]` (a method returning a promise) to record its wall time under `label`. */
function timeMethod(phases: Phases, obj: object, name: string, label: string): () => void {
  const target = obj as Record<string, unknown>
  const original = target[name] as (...a: unknown[]) => Promise<unknown>
  if (typeof original !== 'function') return () => {}
  const own = Object.prototype.hasOwnProperty.call(target, name)
  target[name] = async function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now()
    try {
      return await original.apply(this, args)
    } finally {
      const list = phases.get(label) ?? []
      list.push(performance.now() - t0)
      phases.set(label, list)
    }
  }
  return () => {
    if (own) target[name] = original
    else delete target[name]
  }
}

interface Profile {
  n: number
  rows: { phase: string; p50Ms: number; meanMs: number; calls: number }[]
}

async function profileOurs(runtime: Runtime, image: string, n: number): Promise<Profile> {
  const phases: Phases = new Map()
  const restore = [
    timeMethod(phases, runtime.store, 'hasImage', 'create: store.hasImage'),
    timeMethod(phases, runtime.store, 'resolveImage', 'create: store.resolveImage'),
    timeMethod(phases, runtime.states, 'create', 'create: states.create (state.json)'),
    timeMethod(phases, runtime.store, 'unpack', 'create: store.unpack (layers present?)'),
    timeMethod(phases, runtime.store.snapshots, 'prepare', 'create: snapshots.prepare (directories, record, init layer)'),
    timeMethod(phases, Cgroup, 'create', 'create: Cgroup.create (mkdir + limits)'),
    timeMethod(phases, runtime.states, 'write', 'create+run: states.write (state.json)'),
    timeMethod(phases, Container.prototype, 'start', 'run: container.start (spawn … exec)'),
    timeMethod(phases, Container.prototype, 'wait', 'run: container.wait (exit, drain, oom check)'),
    timeMethod(phases, Container.prototype, 'stats', 'run: container.stats (usage)'),
    timeMethod(phases, Container.prototype, 'delete', 'removal (background): container.delete (all of the below)'),
    timeMethod(phases, Cgroup.prototype, 'destroy', 'removal (background): cgroup.destroy'),
    timeMethod(phases, runtime.store, 'remove', 'removal (background): store.remove (unmount + rm snapshot)'),
    timeMethod(phases, runtime.states, 'remove', 'removal (background): states.remove'),
  ]
  const timings: Record<'create' | 'run' | 'cleanup' | 'total', number[]> = { create: [], run: [], cleanup: [], total: [] }
  try {
    for (let i = 0; i < n; i++) {
      const r = await run({ runtime, image, cmd: ['true'], memory: MEMORY, network: 'none', stdout: 'ignore', stderr: 'ignore' })
      for (const k of Object.keys(timings) as (keyof typeof timings)[]) timings[k].push(r.timings[k])
    }
    await runtime.idle() // the last removals, still timed
  } finally {
    for (const r of restore) r()
  }
  const row = (phase: string, xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b)
    return { phase, p50Ms: percentile(sorted, 50), meanMs: xs.reduce((a, b) => a + b, 0) / xs.length, calls: xs.length / n }
  }
  const rows = [
    ...(['total', 'create', 'run', 'cleanup'] as const).map((k) => row(`RunResult.timings.${k}`, timings[k])),
    ...[...phases.entries()].map(([k, xs]) => row(k, xs)),
  ]
  return { n, rows }
}

/**
 * What container.start() costs, piece by piece: `spawn()` of /bin/true with ours' options,
 * adding one part at a time, on a snapshot of the same image; and the seccomp compile that
 * every create does.
 */
async function startAblation(runtime: Runtime, image: string, tmp: string, n: number): Promise<Profile> {
  const id = `bench-ablation-${process.pid}`
  const snap = await runtime.store.prepare(storeRef(parseImageName(image)), id)
  const cg = await Cgroup.create(id, { memory: { max: MEMORY } }, { parent: `ctr-bench-run-${process.pid}` })
  try {
    const etc = path.join(tmp, 'ablation-etc')
    await fs.mkdir(etc, { recursive: true })
    for (const [f, text] of [['hostname', 'bench\n'], ['hosts', '127.0.0.1\tlocalhost\n'], ['resolv.conf', 'nameserver 8.8.8.8\n']]) await fs.writeFile(path.join(etc, f!), text!)
    const caps = resolveCapabilities({})
    const t0 = performance.now()
    const compiled = compileSeccomp(defaultSeccompProfile(), { caps })
    const compileMs = performance.now() - t0
    const base: SpawnOptions = {
      argv: ['/bin/true'], namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'], hostname: 'bench', rootfs: { path: snap.rootfs }, stdio: ['ignore', 'ignore', 'ignore'],
    }
    const withEtc: SpawnOptions = { ...base, rootfs: { path: snap.rootfs, mounts: ['hostname', 'hosts', 'resolv.conf'].map((f) => ({ type: 'bind' as const, source: path.join(etc, f), target: `/etc/${f}` })) } }
    const withSecurity: SpawnOptions = { ...withEtc, capabilities: capabilitySets(caps), noNewPrivileges: true, seccomp: seccompFilter(compiled) }
    const withCgroup: SpawnOptions = { ...withSecurity, cgroup: cg.placement }
    const variants: [string, SpawnOptions][] = [
      ['spawn(): 5 namespaces + pivot_root into the overlay snapshot', base],
      ['  + bind mounts of /etc/hostname, hosts, resolv.conf', withEtc],
      ['  + capabilities, no_new_privs, seccomp filter', withSecurity],
      ['  + placed in the memory-limited cgroup before exec', withCgroup],
    ]
    const samples = variants.map(() => [] as number[])
    for (let r = 0; r < 4; r++) {
      for (const [i, [, opts]] of variants.entries()) {
        for (let k = 0; k < Math.ceil(n / 4); k++) {
          const s = performance.now()
          const child = await spawn(opts)
          const { code } = await child.exited
          if (code !== 0) throw new Error(`ablation: /bin/true exited with ${code}`)
          samples[i]!.push(performance.now() - s)
        }
      }
    }
    const compileSamples = [compileMs]
    for (let k = 1; k < 20; k++) {
      const s = performance.now()
      compileSeccomp(defaultSeccompProfile(), { caps })
      compileSamples.push(performance.now() - s)
    }
    const row = (phase: string, xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b)
      return { phase, p50Ms: percentile(sorted, 50), meanMs: xs.reduce((a, b) => a + b, 0) / xs.length, calls: 1 }
    }
    return {
      n: samples[0]!.length,
      rows: [
        ...variants.map(([label], i) => row(label, samples[i]!)),
        row('compileSeccomp(defaultSeccompProfile()) (in every create)', compileSamples),
      ],
    }
  } finally {
    await cg.destroy().catch(() => {})
    await runtime.store.remove(id).catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------
// output

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits)
}

function table(o: Options, tools: Tool[]): string {
  const w = Math.max(20, ...tools.map((t) => t.label.length))
  const head = `${'tool'.padEnd(w)}  ${'n'.padStart(4)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'mean ms'.padStart(8)}  ${'runs/s'.padStart(7)}  ${`${o.concurrency} at once: p50 ms`.padStart(20)}  ${'p99 ms'.padStart(8)}  ${'runs/s'.padStart(7)}`
  const lines = [head, '-'.repeat(head.length)]
  for (const t of tools) {
    const s = summarize(t.seq, t.seqWallMs)
    const c = summarize(t.conc, t.concWallMs)
    const cells = `${String(s?.n ?? 0).padStart(4)}  ${fmt(s?.p50Ms).padStart(8)}  ${fmt(s?.p99Ms).padStart(8)}  ${fmt(s?.meanMs).padStart(8)}  ${fmt(s?.perSecond, 1).padStart(7)}  ${fmt(c?.p50Ms).padStart(20)}  ${fmt(c?.p99Ms).padStart(8)}  ${fmt(c?.perSecond, 1).padStart(7)}`
    lines.push(`${t.label.padEnd(w)}  ${cells}${t.error !== undefined ? `  FAILED: ${t.error}` : ''}`)
  }
  return lines.join('\n')
}

function aims(o: Options, tools: Tool[]): string {
  const get = (k: string) => tools.find((t) => t.key === k && t.error === undefined)
  const ours = get('ours')
  const runc = get('runc')
  const lines: string[] = []
  const so = ours && summarize(ours.seq, ours.seqWallMs)
  const sr = runc && summarize(runc.seq, runc.seqWallMs)
  if (so && sr) {
    const r = so.p50Ms / sr.p50Ms
    lines.push(`ours p50 / runc run p50          ${fmt(r).padStart(6)}   aim <= 0.20 (a fifth of runc run)  ${r <= 0.2 ? 'ok' : 'MISSED'}`)
  }
  const co = ours && summarize(ours.conc, ours.concWallMs)
  if (co) {
    lines.push(`ours containers/s, ${o.concurrency} at once    ${fmt(co.perSecond, 1).padStart(6)}   aim >= 100 on 2 cores (${os.cpus().length} here)  ${co.perSecond >= 100 ? 'ok' : 'MISSED'}`)
  }
  if (ours && so && co) {
    lines.push(`ours: CPU time of this Node process per container: ${fmt(ours.seqCpuUs / 1000 / so.n)} ms one at a time, ${fmt(ours.concCpuUs / 1000 / co.n)} ms ${o.concurrency} at once (user + system; the children's and kworkers' time is not in it)`)
  }
  return lines.join('\n')
}

function profileTable(p: Profile, title: string): string {
  const w = Math.max(...p.rows.map((r) => r.phase.length))
  const lines = [
    title,
    `${'phase'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'mean ms'.padStart(8)}  ${'calls/run'.padStart(9)}`,
  ]
  for (const r of p.rows) lines.push(`${r.phase.padEnd(w)}  ${fmt(r.p50Ms).padStart(8)}  ${fmt(r.meanMs).padStart(8)}  ${fmt(r.calls, 1).padStart(9)}`)
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  if (process.getuid?.() !== 0) process.stderr.write('warning: not root; every tool will likely fail\n')
  // Lower case only: podman names an image pulled from a layout after its path.
  const tmp = path.join(os.tmpdir(), `ctr-bench-run-${process.pid}-${randomBytes(4).toString('hex')}`)
  await fs.mkdir(tmp, { mode: 0o700 })
  const own = await ownCgroup()
  let runcSetup: RuncSetup | undefined
  let podman: PodmanSetup | undefined
  let fixtures: Fixtures | undefined
  let state: StateDir | undefined
  let cleaning: Promise<void> | undefined
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      const notes = [
        ...(runcSetup ? await runcCleanup(runcSetup, own) : []),
        ...(podman ? await podmanCleanup(podman) : []),
      ]
      for (const n of notes) process.stderr.write(`cleanup: ${n}\n`)
      await fixtures?.close()
      await fs.rm(tmp, { recursive: true, force: true })
      if (state?.owned) await fs.rm(state.dir, { recursive: true, force: true })
    })())
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\n${sig}: cleaning up\n`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    const stateDir = (state = await stateDirFor(o, tmp))
    process.stderr.write('building the busybox image (OCI layout)\n')
    fixtures = await sharedFixtures()
    const bb = fixtures.images.busybox
    const layout = path.join(tmp, 'busybox-oci')
    await fs.cp(bb.layoutDir, layout, { recursive: true })
    const image = `oci:${layout}:${bb.refName}`
    const rootfs = path.join(tmp, 'rootfs')
    await fs.mkdir(rootfs)
    for (const layer of bb.layers ?? []) await untar({ file: fixtures.blobPath(layer.digest), cwd: rootfs })

    const header =
      `run-to-exit of \`true\` from a cached busybox image, memory limit 64 MiB, network none: ${o.iterations} runs per mode ` +
      `(podman ${o.podmanIterations}), ${o.rounds} interleaved rounds, ${o.warmup} warm-up runs first\n` +
      `node ${process.version}, linux ${os.release()}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start\n` +
      `volatile state of every tool (ours' stateRoot, runc --root, podman --runroot) in ${stateDir.dir} (${stateDir.fs}); ${o.cooldownMs} ms pause before each block`
    process.stderr.write(`${header}\n`)

    const tools: Tool[] = []
    let runtime: Runtime | undefined
    const setup = async (key: string, label: string, f: () => Promise<Tool>): Promise<void> => {
      if (o.skip.has(key)) return
      try {
        tools.push(await f())
      } catch (e) {
        const t = tool(key, label, 0, async () => {})
        t.error = message(e)
        process.stderr.write(`  ${label}: FAILED: ${t.error}\n`)
        tools.push(t)
      }
    }
    await setup('ours', 'ours', async () => {
      const r = await oursTool(o, image, tmp, stateDir.dir)
      runtime = r.runtime
      return r.tool
    })
    await setup('runc', 'runc run', async () => runcTool(o, (runcSetup = await prepareRunc(o, tmp, rootfs, stateDir.dir))))
    await setup('podman', 'podman run', async () => {
      podman = podmanSetup(tmp, stateDir.dir)
      await preparePodman(podman, `${layout}:${bb.refName}`, own)
      return podmanTool(o, podman)
    })
    await interleaved(o, tools)

    let profile: Profile | undefined
    let ablation: Profile | undefined
    if (o.profile && runtime && !o.skip.has('ours')) {
      process.stderr.write('  profile of ours\n')
      profile = await profileOurs(runtime, image, Math.min(100, o.iterations))
      ablation = await startAblation(runtime, image, tmp, Math.min(100, o.iterations))
    }

    const out = ['', header, '', table(o, tools), '', aims(o, tools), '']
    if (profile) {
      out.push(profileTable(profile, `where ours spends its time: ${profile.n} runs one at a time (methods wrapped from outside; they nest: states.write runs in create and in start)`), '')
    }
    if (ablation) out.push(profileTable(ablation, `inside container.start(): spawn() of /bin/true with ours' options, one part added per row (${ablation.n} runs each, interleaved)`), '')
    process.stdout.write(out.join('\n'))
    if (o.json !== undefined) {
      const json = {
        date: new Date().toISOString(), node: process.version, kernel: os.release(), cpus: os.cpus().length, loadavgAtEnd: os.loadavg(),
        options: { ...o, skip: [...o.skip] },
        tools: tools.map((t) => ({ key: t.key, label: t.label, error: t.error, sequential: summarize(t.seq, t.seqWallMs), concurrent: summarize(t.conc, t.concWallMs), seqSamplesMs: t.seq, concSamplesMs: t.conc })),
        profile,
        ablation,
      }
      await fs.writeFile(o.json, JSON.stringify(json, null, 2) + '\n')
      process.stderr.write(`wrote ${o.json}\n`)
    }
    if (runtime) {
      await runtime.idle()
      const left = await runtime.list()
      if (left.length > 0) process.stderr.write(`warning: ${left.length} container(s) of ours left in the state directory\n`)
    }
  } finally {
    await cleanup()
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exitCode = 1
})
