/**
 * bench/network — what bridge networking costs: (1) per container, run-to-exit of `true` and
 * create → started with `network: 'none'` against a user-defined bridge network (made once),
 * interleaved; (2) TCP throughput between two containers on one bridge network against the
 * same pair of processes in one network namespace over loopback, and over a plain veth pair
 * between two namespaces (no bridge, no container).
 *
 *   node bench/dist/network/index.js [--iterations N] [--warmup N] [--rounds N] [--runs N] [--mib N]
 *                                    [--skip setup,throughput,nc,node] [--json FILE]
 *
 * Nothing touches the machine's own network: every bridge, veth, address, route and nft rule
 * lives in network namespaces the bench makes (a holder `sleep` in a new netns, as the tests
 * do) and that vanish when the holders are killed at the end. Every `ip` command runs through
 * `spawn({ join: { net } })` into such a namespace, checked to differ from ours first.
 */
import { existsSync, promises as fs, realpathSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { detect } from '@ctr/cgroups'
import { namespaceId, readText, spawn, type Child } from '@ctr/namespaces'
import { sharedFixtures, type Fixtures } from '@ctr/registry-harness'
import { Network, Runtime, run, type Container } from '@ctr/runtime'

// ---------------------------------------------------------------------------------------------
// options

interface Options {
  iterations: number
  warmup: number
  rounds: number
  runs: number
  mib: number
  nodeMib: number
  skip: Set<string>
  json: string | undefined
}

const USAGE = `usage: node bench/dist/network/index.js [options]
  --iterations N   measured containers per mode and measure, setup cost (default 100)
  --warmup N       unmeasured containers per mode first (default 5)
  --rounds N       interleaved blocks the iterations are split into (default 10)
  --runs N         transfers per pair and payload tool, throughput (default 3)
  --mib N          MiB sent per busybox nc transfer (default 1024)
  --node-mib N     MiB sent per node transfer (default 4096)
  --skip LIST      comma-separated: setup,throughput,nc,node
  --json FILE      also write the results (with every sample) as JSON
`

function parseArgs(argv: string[]): Options {
  const o: Options = { iterations: 100, warmup: 5, rounds: 10, runs: 3, mib: 1024, nodeMib: 4096, skip: new Set(), json: undefined }
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
      case '--warmup': o.warmup = int(flag, value(), 0); break
      case '--rounds': o.rounds = int(flag, value(), 1); break
      case '--runs': o.runs = int(flag, value(), 1); break
      case '--mib': o.mib = int(flag, value(), 1); break
      case '--node-mib': o.nodeMib = int(flag, value(), 1); break
      case '--skip': for (const s of (value() ?? '').split(',')) if (s.trim()) o.skip.add(s.trim()); break
      case '--json': o.json = value(); break
      case '--help': case '-h': process.stdout.write(USAGE); process.exit(0)
      // falls through (process.exit never returns)
      default: throw new Error(`unknown argument ${a}\n${USAGE}`)
    }
  }
  return o
}

// ---------------------------------------------------------------------------------------------
// statistics and output

function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

interface Summary { n: number; p50: number; p99: number; mean: number }

function summarize(xs: number[]): Summary | undefined {
  if (!xs.length) return undefined
  const s = [...xs].sort((a, b) => a - b)
  return { n: xs.length, p50: percentile(s, 50), p99: percentile(s, 99), mean: xs.reduce((a, b) => a + b, 0) / xs.length }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function fmt(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits)
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// ---------------------------------------------------------------------------------------------
// network namespaces that play the host (never ours)

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p))
const BUSYBOX = '/bin/busybox'
const SLEEP = ['/bin/sleep', '/usr/bin/sleep'].find((p) => existsSync(p)) ?? '/bin/sleep'

interface Netns { pid: number; holder: Child }

const holders: Child[] = []

/** A new, empty network namespace held by a `sleep`; it vanishes when the holder is killed. */
async function makeNetns(): Promise<Netns> {
  const holder = await spawn({ argv: [SLEEP, '86400'], env: {}, namespaces: ['net'], stdio: ['ignore', 'ignore', 'ignore'] })
  holders.push(holder)
  if ((await namespaceId(holder.pid, 'net')) === (await namespaceId('self', 'net'))) throw new Error('the holder shares our network namespace: refusing to go on')
  return { pid: holder.pid, holder }
}

/** Runs argv inside `ns` (never ours); resolves with stdout, rejects with stderr. */
async function inNetns(ns: Netns, argv: string[]): Promise<string> {
  if ((await namespaceId(ns.pid, 'net')) === (await namespaceId('self', 'net'))) throw new Error('refusing to run in our own network namespace')
  const child = await spawn({ argv, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, join: { net: ns.pid }, stdio: ['ignore', 'pipe', 'pipe'] })
  const [out, err, st] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
  if (st.code !== 0) throw new Error(`${argv.join(' ')}: ${err.trim() || `exit ${st.code ?? st.signal}`}`)
  return out
}

async function ip(ns: Netns, args: string): Promise<void> {
  if (!IP) throw new Error('iproute2 `ip` is missing (apt-get install iproute2)')
  await inNetns(ns, [IP, ...args.split(' ')])
}

async function killHolders(): Promise<void> {
  for (const h of holders.splice(0)) {
    h.kill('SIGKILL')
    await h.exited.catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------
// 1. setup cost per container

type SetupKey = 'run' | 'created' | 'started' | 'createToStarted' | 'wait' | 'delete' | 'tCreate' | 'tRun' | 'tCleanup'
type SetupSamples = Record<SetupKey, number[]>

const SETUP_ROWS: [SetupKey, string][] = [
  ['run', 'run() of `true`, to its exit (after cleanup)'],
  ['tCreate', '  RunResult.timings.create'],
  ['tRun', '  RunResult.timings.run (start + wait)'],
  ['tCleanup', '  RunResult.timings.cleanup'],
  ['createToStarted', 'create() → start() resolved'],
  ['created', '  create()'],
  ['started', '  start() (until `true` has exec\'d)'],
  ['wait', 'wait() (exit seen)'],
  ['delete', 'delete()'],
]

function emptySetup(): SetupSamples {
  return { run: [], created: [], started: [], createToStarted: [], wait: [], delete: [], tCreate: [], tRun: [], tCleanup: [] }
}

async function setupBench(o: Options, runtime: Runtime, image: string, netName: string): Promise<Record<string, SetupSamples>> {
  const modes = ['none', netName]
  const samples: Record<string, SetupSamples> = { none: emptySetup(), [netName]: emptySetup() }
  const runOnce = async (network: string, s: SetupSamples | undefined): Promise<void> => {
    const t0 = performance.now()
    const r = await run({ runtime, image, cmd: ['true'], network, stdout: 'ignore', stderr: 'ignore', waitForRemoval: true })
    const t = performance.now() - t0
    if (r.exitCode !== 0) throw new Error(`true exited with ${r.signal ?? `code ${r.exitCode}`} (network ${network})`)
    if (!s) return
    s.run.push(t)
    s.tCreate.push(r.timings.create)
    s.tRun.push(r.timings.run)
    s.tCleanup.push(r.timings.cleanup)
  }
  const lifecycleOnce = async (network: string, s: SetupSamples | undefined): Promise<void> => {
    const t0 = performance.now()
    const c: Container = await runtime.create({ image, cmd: ['true'], network })
    const t1 = performance.now()
    try {
      await c.start({ stdout: 'ignore', stderr: 'ignore' })
    } catch (e) {
      await c.delete({ force: true }).catch(() => {})
      throw e
    }
    const t2 = performance.now()
    const exit = await c.wait()
    const t3 = performance.now()
    await c.delete()
    const t4 = performance.now()
    if (exit.exitCode !== 0) throw new Error(`true exited with ${exit.signal ?? `code ${exit.exitCode}`} (network ${network})`)
    if (!s) return
    s.created.push(t1 - t0)
    s.started.push(t2 - t1)
    s.createToStarted.push(t2 - t0)
    s.wait.push(t3 - t2)
    s.delete.push(t4 - t3)
  }
  for (let r = 0; r < o.rounds; r++) {
    const n = Math.floor(o.iterations / o.rounds) + (r < o.iterations % o.rounds ? 1 : 0)
    const warm = r === 0 ? o.warmup : 1
    process.stderr.write(`  setup cost, round ${r + 1}/${o.rounds}: ${n} run() and ${n} create/start/wait/delete per mode\n`)
    // Blocks of one mode (the first mode alternating by round), not containers alternating one
    // by one: what a container leaves to the kernel in the background (freeing its netns: for
    // a bridge container its veth pair too) must be charged to its own mode, not to the next
    // container of the other one. Many short rounds spread the shared machine's changes of load.
    for (let i = 0; i < modes.length; i++) {
      const m = modes[(i + r) % modes.length]!
      for (let k = 0; k < warm; k++) await runOnce(m, undefined)
      for (let k = 0; k < n; k++) await runOnce(m, samples[m])
    }
    for (let i = 0; i < modes.length; i++) {
      const m = modes[(i + r + 1) % modes.length]!
      for (let k = 0; k < warm; k++) await lifecycleOnce(m, undefined)
      for (let k = 0; k < n; k++) await lifecycleOnce(m, samples[m])
    }
  }
  return samples
}

function setupTable(o: Options, samples: Record<string, SetupSamples>, netName: string): string {
  const none = samples['none']!
  const br = samples[netName]!
  const w = Math.max(...SETUP_ROWS.map(([, l]) => l.length))
  const head = `${'measure'.padEnd(w)}  ${'none p50'.padStart(8)}  ${'p99'.padStart(7)}  ${'bridge p50'.padStart(10)}  ${'p99'.padStart(7)}  ${'Δ p50 ms'.padStart(8)}  ${'Δ p99 ms'.padStart(8)}`
  const lines = [
    `setup cost per container (ms): ${none.run.length} measured containers per mode and measure, ${o.rounds} interleaved rounds; ` +
      `none = network: 'none', bridge = network: '${netName}' (a user-defined bridge network made once)`,
    head, '-'.repeat(head.length),
  ]
  for (const [k, label] of SETUP_ROWS) {
    const a = summarize(none[k])
    const b = summarize(br[k])
    lines.push(`${label.padEnd(w)}  ${fmt(a?.p50).padStart(8)}  ${fmt(a?.p99).padStart(7)}  ${fmt(b?.p50).padStart(10)}  ${fmt(b?.p99).padStart(7)}  ${fmt(a && b ? b.p50 - a.p50 : undefined).padStart(8)}  ${fmt(a && b ? b.p99 - a.p99 : undefined).padStart(8)}`)
  }
  const a = summarize(none.createToStarted)
  const b = summarize(br.createToStarted)
  if (a && b) {
    const d = b.p50 - a.p50
    lines.push('', `bridge − none, create → started, p50: ${fmt(d)} ms   aim <= 5 ms ("at most a few milliseconds")  ${d <= 5 ? 'ok' : 'MISSED'}`)
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// 2. throughput

const PORT = 7000

/** The busybox sink: nc's stdin is a FIFO held open read-write (busybox nc quits on stdin EOF). */
const NC_SINK = `f=$0; rm -f $f; busybox mkfifo $f; exec 3<>$f; rm -f $f; exec busybox nc -l -p ${PORT} <&3 >/dev/null`
const ncSend = (ip: string, mib: number) => `busybox dd if=/dev/zero bs=1M count=${mib} 2>/dev/null | busybox nc ${ip} ${PORT}`

/** A node sink and source with 64 KiB reads and 1 MiB writes; the sink prints `bytes ms` from accept to EOF. */
const NODE_JS =
  "const net=require('net');const [m,h,p,n]=process.argv.slice(1);" +
  "if(m==='sink'){const s=net.createServer(c=>{const t=process.hrtime.bigint();let b=0;c.on('data',d=>{b+=d.length});" +
  "c.on('end',()=>{console.log(b+' '+Number(process.hrtime.bigint()-t)/1e6);process.exit(0)})});s.listen(+p)}" +
  "else{const buf=Buffer.alloc(1<<20);let left=+n;const c=net.connect(+p,h,()=>{const w=()=>{while(left>0){left--;" +
  "if(!c.write(buf))return c.once('drain',w)}c.end()};w()});c.on('close',()=>process.exit(0))}"

/** Where a transfer's processes run: start a sink (resolves with its output at exit) and a sender. */
interface Pair {
  key: string
  label: string
  /** The sender dials this address. */
  sinkIp: string
  /** A pid in the sink's network namespace (to see the listener). */
  sinkNsPid: () => number
  sink: (argv: string[], signal: AbortSignal) => Promise<string>
  send: (argv: string[], signal: AbortSignal) => Promise<string>
}

/** Waits until something listens on PORT in the netns of `pid` (a previous sink has exited). */
async function listening(pid: number): Promise<void> {
  const want = `:${PORT.toString(16).toUpperCase().padStart(4, '0')} `
  for (let i = 0; i < 500; i++) {
    // busybox nc listens on :: (tcp6), node on :: too; 127.0.0.1 dials them through v4-mapped addresses.
    const tcp = (await Promise.all(['tcp', 'tcp6'].map((f) => fs.readFile(`/proc/${pid}/net/${f}`, 'utf8').catch(() => '')))).join('\n')
    if (tcp.split('\n').some((l) => { const f = l.trim().split(/\s+/); return f[1]?.endsWith(want.trim()) && f[3] === '0A' })) return
    await sleep(10)
  }
  throw new Error(`nothing listens on port ${PORT} after 5 s`)
}

interface Payload {
  key: 'nc' | 'node'
  label: string
  mib: number
  sinkArgv: (fifo: string) => string[]
  sendArgv: (ip: string) => string[]
  /** Seconds of one transfer: from the sender's start to the sink's exit (nc), or the sink's own accept → EOF (node). */
  seconds: (outsideMs: number, sinkOut: string) => number
}

function payloads(o: Options): Payload[] {
  const out: Payload[] = []
  if (!o.skip.has('nc')) {
    out.push({
      key: 'nc', label: `busybox dd | nc → nc -l >/dev/null, ${o.mib} MiB`, mib: o.mib,
      sinkArgv: (fifo) => ['busybox', 'sh', '-c', NC_SINK, fifo],
      sendArgv: (ip) => ['busybox', 'sh', '-c', ncSend(ip, o.mib)],
      seconds: (ms) => ms / 1000,
    })
  }
  if (!o.skip.has('node')) {
    out.push({
      key: 'node', label: `node net.Socket, 1 MiB writes → 64 KiB reads, ${o.nodeMib} MiB`, mib: o.nodeMib,
      sinkArgv: () => [process.execPath, '-e', NODE_JS, 'sink', '0', String(PORT)],
      sendArgv: (ip) => [process.execPath, '-e', NODE_JS, 'send', ip, String(PORT), String(o.nodeMib)],
      seconds: (_ms, sinkOut) => {
        const [bytes, ms] = sinkOut.trim().split(' ').map(Number)
        if (bytes !== o.nodeMib * 1024 * 1024) throw new Error(`node sink got ${bytes} bytes, not ${o.nodeMib} MiB`)
        return ms! / 1000
      },
    })
  }
  return out
}

/** Host processes (the host's /bin/busybox: the same binary as the image's, and the same node) joined to `ns`. */
/** Processes of a transfer still running (killed when a transfer fails, and at the end). */
const live = new Set<Child>()

function processIn(ns: Netns): (argv: string[], signal: AbortSignal) => Promise<string> {
  return async (argv, signal) => {
    const full = argv[0] === 'busybox' ? [BUSYBOX, ...argv.slice(1)] : argv
    const child = await spawn({ argv: full, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, join: { net: ns.pid }, stdio: ['ignore', 'pipe', 'pipe'] })
    live.add(child)
    const kill = () => child.kill('SIGKILL')
    if (signal.aborted) kill()
    signal.addEventListener('abort', kill, { once: true })
    const [out, err, st] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited]).finally(() => {
      live.delete(child)
      signal.removeEventListener('abort', kill)
    })
    if (st.code !== 0) throw new Error(`${argv.slice(0, 3).join(' ')}…: ${err.trim() || `exit ${st.code ?? st.signal}`}`)
    return out
  }
}

function execIn(c: Container): (argv: string[], signal: AbortSignal) => Promise<string> {
  return async (argv, signal) => {
    const r = await c.exec(argv, { signal })
    if (r.exitCode !== 0) throw new Error(`exec ${argv.slice(0, 3).join(' ')}… in ${c.name}: ${r.stderr.trim() || `exit ${r.exitCode ?? r.signal}`}`)
    return r.stdout
  }
}

async function transfer(pair: Pair, p: Payload, tmp: string): Promise<{ seconds: number; outsideMs: number }> {
  const fifo = pair.key === 'containers' ? '/tmp/ctr-bench-fifo' : path.join(tmp, `fifo-${pair.key}`)
  const ac = new AbortController()
  try {
    const sink = pair.sink(p.sinkArgv(fifo), ac.signal)
    sink.catch(() => {}) // awaited below
    await Promise.race([listening(pair.sinkNsPid()), sink.then(() => { throw new Error('the sink exited before listening') })])
    const t0 = performance.now()
    const [, sinkOut] = await Promise.all([pair.send(p.sendArgv(pair.sinkIp), ac.signal), sink])
    const outsideMs = performance.now() - t0
    return { seconds: p.seconds(outsideMs, sinkOut), outsideMs }
  } finally {
    ac.abort() // a sink or sender still running after a failure
  }
}

interface PairResult { pair: string; payload: string; mib: number; seconds: number[]; mbps: number[]; error?: string }

async function throughputBench(o: Options, pairs: Pair[], tmp: string): Promise<PairResult[]> {
  const results: PairResult[] = []
  for (const p of payloads(o)) {
    const rs = pairs.map((pair) => ({ pair: pair.label, payload: p.label, mib: p.mib, seconds: [] as number[], mbps: [] as number[] } as PairResult))
    for (let r = 0; r < o.runs; r++) {
      for (let i = 0; i < pairs.length; i++) {
        const k = (i + r) % pairs.length
        const pair = pairs[k]!
        const res = rs[k]!
        if (res.error !== undefined) continue
        try {
          const t = await transfer(pair, p, tmp)
          res.seconds.push(t.seconds)
          res.mbps.push((p.mib * 1024 * 1024) / 1e6 / t.seconds)
          process.stderr.write(`  ${p.key} run ${r + 1}/${o.runs}, ${pair.label}: ${fmt(res.mbps.at(-1), 0)} MB/s (${fmt(t.seconds, 3)} s)\n`)
        } catch (e) {
          res.error = message(e)
          process.stderr.write(`  ${p.key}, ${pair.label}: FAILED: ${res.error}\n`)
        }
      }
    }
    results.push(...rs)
  }
  return results
}

function throughputTable(o: Options, results: PairResult[]): string {
  const lines = [`TCP throughput, ${o.runs} transfers per pair (interleaved), MB/s = 10^6 bytes/s; median of the runs`]
  for (const payload of [...new Set(results.map((r) => r.payload))]) {
    const rows = results.filter((r) => r.payload === payload)
    const w = Math.max(...rows.map((r) => r.pair.length), 20)
    const head = `${'pair'.padEnd(w)}  ${'runs MB/s'.padStart(22)}  ${'median MB/s'.padStart(11)}  ${'× loopback'.padStart(10)}`
    lines.push('', payload, head, '-'.repeat(head.length))
    const base = rows[0] && rows[0].mbps.length ? median(rows[0].mbps) : undefined
    for (const r of rows) {
      const m = r.mbps.length ? median(r.mbps) : undefined
      lines.push(`${r.pair.padEnd(w)}  ${r.mbps.map((x) => fmt(x, 0)).join(' ').padStart(22)}  ${fmt(m, 0).padStart(11)}  ${fmt(m && base ? m / base : undefined).padStart(10)}${r.error !== undefined ? `  FAILED: ${r.error}` : ''}`)
    }
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  if (process.getuid?.() !== 0) process.stderr.write('warning: not root; this will fail\n')
  const tmp = path.join(os.tmpdir(), `ctr-bench-network-${process.pid}-${randomBytes(4).toString('hex')}`)
  await fs.mkdir(tmp, { mode: 0o700 })
  const cgroupParent = `ctr-bench-network-${process.pid}`
  let fixtures: Fixtures | undefined
  let runtime: Runtime | undefined
  const nets: Network[] = []
  const containers: Container[] = []
  let cleaning: Promise<void> | undefined
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const c of containers) await c.delete({ force: true }).catch((e: unknown) => process.stderr.write(`cleanup: container ${c.name}: ${message(e)}\n`))
      if (runtime) {
        for (const s of await runtime.list().catch(() => [])) {
          process.stderr.write(`cleanup: leftover container ${s.id}\n`)
          await (await runtime.get(s.id)).delete({ force: true }).catch(() => {})
        }
      }
      for (const n of nets) await n.remove().catch((e: unknown) => process.stderr.write(`cleanup: network ${n.name}: ${message(e)}\n`))
      for (const c of live) c.kill('SIGKILL')
      await killHolders()
      const host = await detect().catch(() => undefined)
      for (const b of [
        ...(host?.unified ? [path.join(host.unified.mount, host.unified.own, cgroupParent)] : []),
        ...(host?.legacy ?? []).map((h) => path.join(h.mount, h.own, cgroupParent)),
      ]) await fs.rmdir(b).catch(() => {})
      await fixtures?.close()
      await fs.rm(tmp, { recursive: true, force: true })
    })())
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\n${sig}: cleaning up\n`)
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  try {
    process.stderr.write('building the busybox image (OCI layout)\n')
    fixtures = await sharedFixtures()
    const bb = fixtures.images.busybox
    const image = `oci:${bb.layoutDir}:${bb.refName}`
    const header =
      `bench/network: node ${process.version}, linux ${os.release()}, ${os.cpus().length} CPUs, ` +
      `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start`
    process.stderr.write(`${header}\n`)

    // The "host": a netns of its own, where the bridge, its veths and the nft table go.
    const host = await makeNetns()
    runtime = await Runtime.open({ root: path.join(tmp, 'store'), stateRoot: path.join(tmp, 'run'), cgroupParent, hostNetns: host.pid })
    const net = await Network.create({ name: 'benchnet', runtime })
    nets.push(net)
    const first = await run({ runtime, image, cmd: ['true'], network: 'none', stdout: 'ignore', stderr: 'ignore' }) // imports and unpacks the image
    if (first.exitCode !== 0) throw new Error(`true exited with ${first.exitCode}`)

    const out: string[] = ['', header, '']
    const json: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, kernel: os.release(), cpus: os.cpus().length, options: { ...o, skip: [...o.skip] } }

    if (!o.skip.has('setup')) {
      const samples = await setupBench(o, runtime, image, net.name)
      out.push(setupTable(o, samples, net.name), '')
      json['setup'] = Object.fromEntries(Object.entries(samples).map(([m, s]) => [m, Object.fromEntries(Object.entries(s).map(([k, xs]) => [k, { ...summarize(xs), samplesMs: xs }]))]))
    }

    if (!o.skip.has('throughput')) {
      process.stderr.write('  throughput: setting up the pairs\n')
      // One netns, loopback.
      const loop = await makeNetns()
      await ip(loop, 'link set lo up')
      // Two netns joined by a veth pair, no bridge.
      const va = await makeNetns()
      const vb = await makeNetns()
      await ip(va, `link add vbench0 type veth peer name vbench1 netns ${vb.pid}`)
      await ip(va, 'addr add 10.250.0.1/24 dev vbench0')
      await ip(vb, 'addr add 10.250.0.2/24 dev vbench1')
      for (const [ns, dev] of [[va, 'vbench0'], [vb, 'vbench1']] as const) {
        await ip(ns, `link set ${dev} up`)
        await ip(ns, 'link set lo up')
      }
      // Two containers on the bridge network; the host's node (and its libraries) bound in read-only.
      const binds = [
        { type: 'bind' as const, source: '/usr', target: '/usr', readonly: true },
        { type: 'bind' as const, source: realpathSync('/lib'), target: '/lib', readonly: true },
        ...(existsSync('/lib64') ? [{ type: 'bind' as const, source: realpathSync('/lib64'), target: '/lib64', readonly: true }] : []),
      ]
      const mk = async (name: string): Promise<Container> => {
        const c = await runtime!.create({ image, name, network: net.name, mounts: binds, cmd: ['busybox', 'sleep', '86400'] })
        containers.push(c)
        await c.start()
        return c
      }
      const sinkC = await mk('bench-sink')
      const sendC = await mk('bench-send')
      const sinkIp = (await net.containers()).find((c) => c.name === 'bench-sink')!.ip
      const pairs: Pair[] = [
        { key: 'loopback', label: 'two processes, one netns, loopback', sinkIp: '127.0.0.1', sinkNsPid: () => loop.pid, sink: processIn(loop), send: processIn(loop) },
        { key: 'veth', label: 'two processes, two netns, veth pair (no bridge)', sinkIp: '10.250.0.2', sinkNsPid: () => vb.pid, sink: processIn(vb), send: processIn(va) },
        { key: 'containers', label: `two containers on bridge network ${net.name}`, sinkIp, sinkNsPid: () => sinkC.pid!, sink: execIn(sinkC), send: execIn(sendC) },
      ]
      const results = await throughputBench(o, pairs, tmp)
      out.push(throughputTable(o, results), '')
      json['throughput'] = results
    }

    process.stdout.write(out.join('\n'))
    if (o.json !== undefined) {
      await fs.writeFile(o.json, JSON.stringify({ ...json, loadavgAtEnd: os.loadavg() }, null, 2) + '\n')
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
