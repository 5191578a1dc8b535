/**
 * bench/spawn — spawn-to-exit latency and sequential spawns per second of `/bin/true` in new
 * pid+mnt+uts+ipc+net namespaces with a pivot_root into a busybox rootfs, measured side by
 * side with `unshare(1)` and `runc run` on the same rootfs, then again from a parent that
 * holds a 1 GiB JS heap (the cost must not grow with the parent's memory).
 *
 *   node bench/dist/spawn/index.js [--iterations N] [--warmup N] [--rounds N] [--heap-mib N]
 *                                  [--skip ours,unshare,runc,baseline,bigheap] [--json FILE]
 *
 * Every tool is measured in `--rounds` interleaved blocks whose samples are pooled, so a
 * burst of load on a shared machine hits every tool alike instead of skewing one ratio.
 *
 * The heap comparison runs in two child Node processes (this same script with
 * `--bench-child`): one with a small heap, one that first fills `--heap-mib` of V8 heap.
 * Both stay alive and are driven block by block over an IPC channel, alternating, so the
 * small-heap and big-heap figures come from the same stretch of time.
 */
import { spawn as cpSpawn, type ChildProcess, type SpawnOptions as CpSpawnOptions } from 'node:child_process'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { busyboxRootfs } from '@ctr/fixtures'

type Namespaces = typeof import('@ctr/namespaces')

const NAMESPACES = ['pid', 'mnt', 'uts', 'ipc', 'net'] as const
const UNSHARE_FLAGS = ['--fork', '--pid', '--mount', '--uts', '--ipc', '--net']

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  iterations: number
  warmup: number
  rounds: number
  heapMiB: number
  skip: Set<string>
  json: string | undefined
  /** internal: run as a heap-comparison child holding this many MiB of heap */
  benchChild: number | undefined
  root: string | undefined
}

const USAGE = `usage: node bench/dist/spawn/index.js [options]
  --iterations N   measured spawns per tool (default 200)
  --warmup N       unmeasured spawns per tool before measuring (default 20)
  --rounds N       interleaved blocks the iterations are split into (default 4)
  --heap-mib N     size of the big parent heap in MiB (default 1024)
  --skip LIST      comma-separated: ours,unshare,runc,baseline,bigheap
  --json FILE      also write the results (with every sample) as JSON
`

function parseArgs(argv: string[]): Options {
  const o: Options = {
    iterations: 200, warmup: 20, rounds: 4, heapMiB: 1024, skip: new Set(), json: undefined, benchChild: undefined, root: undefined,
  }
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v)
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}\n${USAGE}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const eq = a.startsWith('--') ? a.indexOf('=') : -1
    const flag = eq > 0 ? a.slice(0, eq) : a
    const inline = eq > 0 ? a.slice(eq + 1) : undefined
    const value = (): string | undefined => inline ?? argv[++i]
    switch (flag) {
      case '--iterations': case '-n': o.iterations = int(flag, value(), 1); break
      case '--warmup': o.warmup = int(flag, value(), 0); break
      case '--rounds': o.rounds = int(flag, value(), 1); break
      case '--heap-mib': o.heapMiB = int(flag, value(), 1); break
      case '--skip': for (const s of (value() ?? '').split(',')) if (s.trim()) o.skip.add(s.trim()); break
      case '--json': o.json = value(); break
      case '--bench-child': o.benchChild = int(flag, value(), 0); break
      case '--root': o.root = value(); break
      case '--help': case '-h': process.stdout.write(USAGE); process.exit(0)
      // falls through (process.exit never returns)
      default: throw new Error(`unknown argument ${a}\n${USAGE}`)
    }
  }
  o.rounds = Math.min(o.rounds, o.iterations)
  return o
}

/** How many measured iterations round `r` gets. */
function blockSize(o: Options, r: number): number {
  return Math.floor(o.iterations / o.rounds) + (r < o.iterations % o.rounds ? 1 : 0)
}

/** Warm-up before round `r`'s block: the full warm-up first, a short re-warm after. */
function blockWarmup(o: Options, r: number): number {
  return r === 0 ? o.warmup : Math.min(o.warmup, 3)
}

// ---------------------------------------------------------------------------------------------
// measuring

interface Result {
  key: string
  label: string
  iterations: number
  p50Ms?: number
  p99Ms?: number
  meanMs?: number
  minMs?: number
  maxMs?: number
  /** sequential: measured iterations / wall-clock seconds of the measured blocks */
  perSecond?: number
  samplesMs?: number[]
  error?: string
}

interface Block {
  samples: number[]
  wallMs: number
}

/** One tool: what a spawn is, and its pooled samples. */
interface Bench {
  key: string
  label: string
  once?: () => Promise<void>
  samples: number[]
  wallMs: number
  error?: string
}

function bench(key: string, label: string, once: () => Promise<void>): Bench {
  return { key, label, once, samples: [], wallMs: 0 }
}

function failed(key: string, label: string, e: unknown): Bench {
  return { key, label, samples: [], wallMs: 0, error: message(e) }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

async function sampleBlock(once: () => Promise<void>, warmup: number, n: number): Promise<Block> {
  for (let i = 0; i < warmup; i++) await once()
  const samples: number[] = []
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const s = performance.now()
    await once()
    samples.push(performance.now() - s)
  }
  return { samples, wallMs: performance.now() - t0 }
}

/** Runs one block of `b`, pooling its samples; a failure marks the tool failed for good. */
async function runBlock(b: Bench, warmup: number, n: number): Promise<void> {
  if (b.error !== undefined || !b.once) return
  try {
    const blk = await sampleBlock(b.once, warmup, n)
    b.samples.push(...blk.samples)
    b.wallMs += blk.wallMs
  } catch (e) {
    b.error = message(e)
    process.stderr.write(`  ${b.label}: FAILED: ${b.error}\n`)
  }
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

function summarize(b: Bench): Result {
  const base: Result = { key: b.key, label: b.label, iterations: b.samples.length }
  if (b.error !== undefined || b.samples.length === 0) return { ...base, error: b.error ?? 'no samples' }
  const sorted = [...b.samples].sort((x, y) => x - y)
  return {
    ...base,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: b.samples.reduce((x, y) => x + y, 0) / b.samples.length,
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
    perSecond: b.samples.length / (b.wallMs / 1000),
    samplesMs: b.samples.map((x) => Math.round(x * 1000) / 1000),
  }
}

/** Measures every bench in `o.rounds` rounds, rotating which one goes first. */
async function interleaved(o: Options, benches: Bench[]): Promise<Result[]> {
  for (let r = 0; r < o.rounds; r++) {
    process.stderr.write(`  round ${r + 1}/${o.rounds}\n`)
    for (let i = 0; i < benches.length; i++) {
      await runBlock(benches[(i + r) % benches.length]!, blockWarmup(o, r), blockSize(o, r))
    }
  }
  return benches.map(summarize)
}

// ---------------------------------------------------------------------------------------------
// the tools

/** Runs a program through Node's child_process and resolves on 'exit' with status 0. */
function runToExit(file: string, args: string[], opts: CpSpawnOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = cpSpawn(file, args, { stdio: 'ignore', ...opts })
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${file} ${args.join(' ')}: exited with ${signal ?? `code ${code}`}`))
    })
  })
}

/** Same, but collects stdout/stderr: for set-up steps and to explain a failure. */
function runCapture(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
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

/** A measured run failed: run it once more with output captured so the error says why. */
async function explain(file: string, args: string[], err: unknown): Promise<never> {
  const r = await runCapture(file, args).catch(() => undefined)
  const why = r ? (r.stderr || r.stdout).trim() : ''
  throw new Error(why ? `${message(err)}: ${why}` : message(err))
}

async function loadNamespaces(): Promise<Namespaces> {
  try {
    return await import('@ctr/namespaces')
  } catch (e) {
    throw new Error(`cannot load @ctr/namespaces (built? corepack pnpm --filter @ctr/namespaces... build): ${message(e)}`)
  }
}

const LABEL = {
  ours: 'ours: spawn() pid+mnt+uts+ipc+net, pivot_root',
  oursHost: 'ours: spawn() no namespaces, host /bin/true',
  baseline: "child_process.spawn('/bin/true'), host",
}

/** `ours` (new namespaces + rootfs) and `ours-host` (no namespaces): the fixed cost. */
async function oursBenches(root: string, suffix = ''): Promise<Bench[]> {
  let ns: Namespaces
  try {
    ns = await loadNamespaces()
  } catch (e) {
    process.stderr.write(`  ours: FAILED: ${message(e)}\n`)
    return [failed('ours', LABEL.ours + suffix, e), failed('ours-host', LABEL.oursHost + suffix, e)]
  }
  const once = (withRootfs: boolean) => async (): Promise<void> => {
    const child = await ns.spawn(
      withRootfs
        ? { argv: ['/bin/true'], namespaces: [...NAMESPACES], rootfs: { path: root }, stdio: ['ignore', 'ignore', 'ignore'] }
        : { argv: ['/bin/true'], stdio: ['ignore', 'ignore', 'ignore'] },
    )
    const { code, signal } = await child.exited
    if (code !== 0) throw new Error(`/bin/true exited with ${signal ?? `code ${code}`}`)
  }
  return [bench('ours', LABEL.ours + suffix, once(true)), bench('ours-host', LABEL.oursHost + suffix, once(false))]
}

function baselineBench(suffix = ''): Bench {
  return bench('baseline', LABEL.baseline + suffix, () => runToExit('/bin/true', []).catch((e: unknown) => explain('/bin/true', [], e)))
}

async function unshareBench(root: string): Promise<Bench> {
  const help = await runCapture('unshare', ['--help']).catch(() => undefined)
  const hasRoot = /--root\b/.test(help?.stdout ?? '')
  const args = hasRoot ? [...UNSHARE_FLAGS, `--root=${root}`, '/bin/true'] : [...UNSHARE_FLAGS, 'chroot', root, '/bin/true']
  const label = `unshare ${UNSHARE_FLAGS.join(' ')} ${hasRoot ? '--root' : 'chroot'}`
  return bench('unshare', label, () => runToExit('unshare', args).catch((e: unknown) => explain('unshare', args, e)))
}

// runc run -------------------------------------------------------------------------------------

interface RuncSetup {
  bundle: string
  state: string
  cgroupName: string
  version: string
}

async function prepareRunc(tmp: string, root: string): Promise<RuncSetup> {
  const bundle = path.join(tmp, 'runc-bundle')
  const state = path.join(tmp, 'runc-state')
  await fs.mkdir(bundle, { recursive: true })
  await fs.mkdir(state, { recursive: true })
  const v = await runCapture('runc', ['--version'])
  if (v.code !== 0) throw new Error(`runc --version failed: ${v.stderr.trim()}`)
  const spec = await runCapture('runc', ['spec', '--bundle', bundle])
  if (spec.code !== 0) throw new Error(`runc spec failed: ${spec.stderr.trim()}`)
  const configPath = path.join(bundle, 'config.json')
  const config = JSON.parse(await fs.readFile(configPath, 'utf8')) as {
    process: { terminal?: boolean; args?: string[] }
    root?: { path: string; readonly?: boolean }
    linux: { namespaces?: { type: string }[]; cgroupsPath?: string }
  }
  config.process.terminal = false
  config.process.args = ['/bin/true']
  config.root = { path: root, readonly: false }
  config.linux.namespaces = [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network' }]
  // A relative cgroupsPath is taken below runc's own cgroup (ours) in every hierarchy, so the
  // bench creates cgroups only below its own; `runc run` (foreground) removes the cgroup when
  // it deletes the container on exit.
  const cgroupName = `ctr-bench-runc-${process.pid}`
  config.linux.cgroupsPath = cgroupName
  await fs.writeFile(configPath, JSON.stringify(config, null, 2))
  return { bundle, state, cgroupName, version: v.stdout.split('\n')[0]!.replace(/^runc version\s*/, '').trim() }
}

function runcBench(setup: RuncSetup): Bench {
  let seq = 0
  const runc = (...args: string[]): string[] => ['--root', setup.state, ...args]
  return bench('runc', `runc run (${setup.version}) pid+mnt+uts+ipc+net`, async () => {
    const id = `ctr-bench-${process.pid}-${seq++}`
    try {
      await runToExit('runc', runc('run', '--bundle', setup.bundle, id))
    } catch (e) {
      await runCapture('runc', runc('delete', '-f', id)).catch(() => undefined)
      try {
        await explain('runc', runc('run', '--bundle', setup.bundle, `${id}-diag`), e)
      } finally {
        await runCapture('runc', runc('delete', '-f', `${id}-diag`)).catch(() => undefined)
      }
    }
  })
}

async function runcCleanup(setup: RuncSetup): Promise<string[]> {
  const notes: string[] = []
  const list = await runCapture('runc', ['--root', setup.state, 'list', '-q']).catch(() => undefined)
  for (const id of (list?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean)) {
    await runCapture('runc', ['--root', setup.state, 'delete', '-f', id]).catch(() => undefined)
    notes.push(`deleted leftover runc container ${id}`)
  }
  // runc should have removed the container's cgroup; make sure (rmdir only: never rm -r)
  const own = await fs.readFile('/proc/self/cgroup', 'utf8')
  for (const line of own.split('\n').filter(Boolean)) {
    const [, controllers, cgPath] = line.split(':')
    if (controllers === undefined || cgPath === undefined) continue
    const mountName = controllers === '' ? 'unified' : controllers.replace(/^name=/, '')
    for (const c of new Set([mountName, ...mountName.split(',')])) {
      const dir = path.join('/sys/fs/cgroup', c, cgPath, setup.cgroupName)
      try {
        await fs.rmdir(dir)
        notes.push(`removed leftover cgroup ${dir}`)
      } catch {
        // ENOENT: runc cleaned up, as it should
      }
    }
  }
  return notes
}

// ---------------------------------------------------------------------------------------------
// the heap comparison: two child Node processes driven over IPC

type ToChild = { type: 'block'; key: string; warmup: number; n: number } | { type: 'exit' }
type FromChild =
  | { type: 'ready'; memory: Memory; benches: { key: string; label: string; error?: string }[] }
  | { type: 'block'; key: string; samples?: number[]; wallMs?: number; error?: string }
  | { type: 'fatal'; error: string }

interface Memory {
  rssMiB: number
  heapUsedMiB: number
}

const toMiB = (n: number): number => Math.round(n / (1024 * 1024))
const memory = (): Memory => {
  const m = process.memoryUsage()
  return { rssMiB: toMiB(m.rss), heapUsedMiB: toMiB(m.heapUsed) }
}

/** Fills ~`mib` MiB of V8 heap with packed double arrays, writing every element. */
function fillHeap(mib: number): number[][] {
  const keep: number[][] = []
  const target = mib * 1024 * 1024
  let x = 0.5
  while (process.memoryUsage().heapUsed < target) {
    for (let k = 0; k < 64; k++) {
      const a: number[] = []
      for (let i = 0; i < 64 * 1024; i++) a.push((x += 1.25)) // 512 KiB of unboxed doubles
      keep.push(a)
    }
  }
  return keep
}

/** The `--bench-child` side: fill the heap, then run the blocks the parent asks for. */
async function benchChild(o: Options): Promise<void> {
  const send = (m: FromChild): void => void process.send?.(m)
  const mib = o.benchChild ?? 0
  let keep: number[][] = []
  try {
    if (!process.send) throw new Error('--bench-child needs an IPC channel')
    if (o.root === undefined) throw new Error('--bench-child needs --root')
    if (mib > 0) {
      keep = fillHeap(mib)
      const m = process.memoryUsage()
      if (m.rss < mib * 1024 * 1024) throw new Error(`rss ${toMiB(m.rss)} MiB is below the ${mib} MiB asked for`)
    }
    const benches = [...(await oursBenches(o.root)), baselineBench()]
    const byKey = new Map(benches.map((b) => [b.key, b]))
    process.on('message', (msg: ToChild) => {
      if (msg.type === 'exit') {
        process.disconnect()
        return
      }
      const b = byKey.get(msg.key)
      if (!b?.once) {
        send({ type: 'block', key: msg.key, error: b?.error ?? `unknown bench ${msg.key}` })
        return
      }
      sampleBlock(b.once, msg.warmup, msg.n).then(
        (blk) => send({ type: 'block', key: msg.key, samples: blk.samples, wallMs: blk.wallMs }),
        (e: unknown) => send({ type: 'block', key: msg.key, error: message(e) }),
      )
    })
    send({ type: 'ready', memory: memory(), benches: benches.map((b) => ({ key: b.key, label: b.label, ...(b.error !== undefined ? { error: b.error } : {}) })) })
  } catch (e) {
    send({ type: 'fatal', error: message(e) })
    process.disconnect?.()
  }
  // the heap must stay reachable while the child measures
  process.once('disconnect', () => void keep.length)
}

/** The parent side of one bench child. */
class BenchChild {
  readonly proc: ChildProcess
  private waiting: ((m: FromChild) => void) | undefined
  private exited: Promise<void>
  stderr = ''

  constructor(o: Options, root: string, readonly heapMiB: number) {
    const script = fileURLToPath(import.meta.url)
    const args = [
      `--max-old-space-size=${Math.max(4096, heapMiB * 4)}`, script, '--bench-child', String(heapMiB), '--root', root,
    ]
    this.proc = cpSpawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    this.proc.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d))
    this.proc.on('message', (m: FromChild) => {
      const w = this.waiting
      this.waiting = undefined
      w?.(m)
    })
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()))
    void this.exited.then(() => this.waiting?.({ type: 'fatal', error: `child exited: ${this.stderr.trim() || 'no output'}` }))
  }

  next(): Promise<FromChild> {
    return new Promise((resolve) => (this.waiting = resolve))
  }

  async block(key: string, warmup: number, n: number): Promise<FromChild> {
    const reply = this.next()
    this.proc.send({ type: 'block', key, warmup, n } satisfies ToChild)
    return reply
  }

  async close(): Promise<void> {
    if (this.proc.connected) this.proc.send({ type: 'exit' } satisfies ToChild)
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(timer)
  }
}

interface HeapReport {
  heapMiB: number
  small: { memory?: Memory; results: Result[] }
  big: { memory?: Memory; results: Result[] }
  error?: string
}

async function heapComparison(o: Options, root: string): Promise<HeapReport> {
  const report: HeapReport = { heapMiB: o.heapMiB, small: { results: [] }, big: { results: [] } }
  const small = new BenchChild(o, root, 0)
  const big = new BenchChild(o, root, o.heapMiB)
  try {
    const [rs, rb] = await Promise.all([small.next(), big.next()])
    if (rs.type !== 'ready') throw new Error(`small-heap child: ${rs.type === 'fatal' ? rs.error : 'no ready'}`)
    if (rb.type !== 'ready') throw new Error(`${o.heapMiB} MiB-heap child: ${rb.type === 'fatal' ? rb.error : 'no ready'}`)
    report.small.memory = rs.memory
    report.big.memory = rb.memory
    process.stderr.write(`  small-heap child pid ${small.proc.pid}: rss ${rs.memory.rssMiB} MiB; ` +
      `big-heap child pid ${big.proc.pid}: rss ${rb.memory.rssMiB} MiB, heapUsed ${rb.memory.heapUsedMiB} MiB\n`)
    const sides = [
      { child: small, suffix: ', small-heap parent', ready: rs },
      { child: big, suffix: `, ${o.heapMiB} MiB-heap parent`, ready: rb },
    ].map((s) => ({
      ...s,
      benches: s.ready.benches.map((d) => ({ key: d.key, label: d.label + s.suffix, samples: [], wallMs: 0, ...(d.error !== undefined ? { error: d.error } : {}) }) as Bench),
    }))
    for (let r = 0; r < o.rounds; r++) {
      process.stderr.write(`  round ${r + 1}/${o.rounds}\n`)
      for (let k = 0; k < sides[0]!.benches.length; k++) {
        for (let s = 0; s < sides.length; s++) {
          const side = sides[(s + r) % sides.length]!
          const b = side.benches[k]!
          if (b.error !== undefined) continue
          const reply = await side.child.block(b.key, blockWarmup(o, r), blockSize(o, r))
          if (reply.type === 'block' && reply.samples && reply.wallMs !== undefined) {
            b.samples.push(...reply.samples)
            b.wallMs += reply.wallMs
          } else {
            b.error = reply.type === 'block' || reply.type === 'fatal' ? (reply.error ?? 'no samples') : 'unexpected reply'
            process.stderr.write(`  ${b.label}: FAILED: ${b.error}\n`)
          }
        }
      }
    }
    report.small.results = sides[0]!.benches.map(summarize)
    report.big.results = sides[1]!.benches.map(summarize)
  } catch (e) {
    report.error = message(e)
  } finally {
    await Promise.all([small.close(), big.close()])
  }
  return report
}

// ---------------------------------------------------------------------------------------------
// output

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits)
}

function table(rows: Result[]): string {
  const w = Math.max(20, ...rows.map((r) => r.label.length))
  const head = `${'tool'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'mean ms'.padStart(8)}  ${'spawns/s'.padStart(9)}`
  const lines = [head, '-'.repeat(head.length)]
  for (const r of rows) {
    if (r.error !== undefined) lines.push(`${r.label.padEnd(w)}  FAILED: ${r.error}`)
    else lines.push(`${r.label.padEnd(w)}  ${fmt(r.p50Ms).padStart(8)}  ${fmt(r.p99Ms).padStart(8)}  ${fmt(r.meanMs).padStart(8)}  ${fmt(r.perSecond, 0).padStart(9)}`)
  }
  return lines.join('\n')
}

interface Ratio {
  name: string
  p50?: number
  p99?: number
  aim: string
  pass?: boolean
}

function ratio(name: string, a: Result | undefined, b: Result | undefined, aim: string, aimMax?: number): Ratio {
  const ok = (r: Result | undefined): r is Result & { p50Ms: number; p99Ms: number } =>
    r !== undefined && r.error === undefined && r.p50Ms !== undefined && r.p99Ms !== undefined
  if (!ok(a) || !ok(b)) return { name, aim }
  const p50 = a.p50Ms / b.p50Ms
  return { name, p50, p99: a.p99Ms / b.p99Ms, aim, ...(aimMax !== undefined ? { pass: p50 <= aimMax } : {}) }
}

function ratioTable(ratios: Ratio[]): string {
  const w = Math.max(...ratios.map((r) => r.name.length))
  const lines = [`${'ratio'.padEnd(w)}  ${'p50'.padStart(6)}  ${'p99'.padStart(6)}  aim (on p50)`]
  for (const r of ratios) {
    const verdict = r.pass === undefined ? '' : r.pass ? '  ok' : '  MISSED'
    lines.push(`${r.name.padEnd(w)}  ${fmt(r.p50).padStart(6)}  ${fmt(r.p99).padStart(6)}  ${r.aim}${verdict}`)
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  if (o.benchChild !== undefined) return benchChild(o)
  if (process.getuid?.() !== 0) process.stderr.write('warning: not root; namespaces, runc and unshare will likely fail\n')

  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-bench-spawn-'))
  let runc: RuncSetup | undefined
  let cleaning: Promise<void> | undefined
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (runc) for (const note of await runcCleanup(runc)) process.stderr.write(`cleanup: ${note}\n`)
      await fs.rm(tmp, { recursive: true, force: true })
    })())
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\n${sig}: cleaning up\n`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    const root = await busyboxRootfs(path.join(tmp, 'rootfs'))
    const header =
      `spawn-to-exit of /bin/true: ${o.iterations} measured runs per tool (${o.rounds} interleaved rounds, ` +
      `${o.warmup} warm-up runs first), each run waited for before the next\n` +
      `node ${process.version}, linux ${os.release()}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start`
    process.stderr.write(`${header}\nrootfs ${root}\n`)

    const benches: Bench[] = []
    if (!o.skip.has('ours')) benches.push(...(await oursBenches(root)))
    if (!o.skip.has('unshare')) benches.push(await unshareBench(root))
    if (!o.skip.has('runc')) {
      try {
        runc = await prepareRunc(tmp, root)
        benches.push(runcBench(runc))
      } catch (e) {
        benches.push(failed('runc', 'runc run', e))
      }
    }
    if (!o.skip.has('baseline')) benches.push(baselineBench())
    const results = benches.length > 0 ? await interleaved(o, benches) : []

    let heap: HeapReport | undefined
    if (!o.skip.has('bigheap')) {
      process.stderr.write(`heap comparison (${o.heapMiB} MiB):\n`)
      heap = await heapComparison(o, root)
    }

    const find = (rs: Result[] | undefined, key: string): Result | undefined => rs?.find((r) => r.key === key)
    const hs = heap?.small.results
    const hb = heap?.big.results
    const ratios = [
      ratio('ours / unshare(1)', find(results, 'ours'), find(results, 'unshare'), '<= 1.00 (no slower than unshare)', 1),
      ratio('ours / runc run', find(results, 'ours'), find(results, 'runc'), '<= 0.20 (a fifth of runc run)', 0.2),
      ratio(`ours, ${o.heapMiB} MiB heap / small heap`, find(hb, 'ours'), find(hs, 'ours'), '<= 1.50', 1.5),
      ratio(`ours no-ns, ${o.heapMiB} MiB heap / small heap`, find(hb, 'ours-host'), find(hs, 'ours-host'), '(reference)'),
      ratio(`child_process, ${o.heapMiB} MiB heap / small heap`, find(hb, 'baseline'), find(hs, 'baseline'), '(reference)'),
    ]

    const out: string[] = ['', header, '']
    if (results.length > 0) out.push(table(results), '')
    if (heap) {
      out.push(
        `from two child node processes measured alternately: one small-heap (rss ${heap.small.memory?.rssMiB ?? '?'} MiB), ` +
          `one holding a ${o.heapMiB} MiB JS heap (rss ${heap.big.memory?.rssMiB ?? '?'} MiB, heapUsed ${heap.big.memory?.heapUsedMiB ?? '?'} MiB):`,
      )
      if (heap.error !== undefined) out.push(`FAILED: ${heap.error}`)
      const rows = [...heap.small.results, ...heap.big.results]
      if (rows.length > 0) out.push(table(rows))
      out.push('')
    }
    out.push(ratioTable(ratios), '')
    process.stdout.write(out.join('\n'))

    if (o.json !== undefined) {
      const json = {
        date: new Date().toISOString(),
        node: process.version,
        kernel: os.release(),
        cpus: os.cpus().length,
        loadavgAtEnd: os.loadavg(),
        iterations: o.iterations,
        warmup: o.warmup,
        rounds: o.rounds,
        results,
        heap,
        ratios,
      }
      await fs.writeFile(o.json, JSON.stringify(json, null, 2) + '\n')
      process.stderr.write(`wrote ${o.json}\n`)
    }
  } finally {
    await cleanup()
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exitCode = 1
})
