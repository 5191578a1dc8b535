/**
 * bench/cgroups — the life of one limited cgroup: create + limit (memory, pids, cpu), place
 * a `/bin/true` into it before it execs (spawn to exit), destroy. Per phase p50/p99 and
 * cgroups per second, side by side with libcgroup's cgcreate/cgset/cgexec/cgdelete
 * (Debian's cgroup-tools) doing the same, when it is installed.
 *
 *   node bench/dist/cgroups/index.js [--iterations N] [--warmup N]
 *
 * Runs on whatever this host has: v1 (hybrid) here, v2 under scripts/vm-test.
 */
import { execFile } from 'node:child_process'
import { readdir, rmdir } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { Cgroup, detect } from '@ctr/cgroups'
import { spawn } from '@ctr/namespaces'

const run = promisify(execFile)
const LIMITS = { memory: { max: 64 * 2 ** 20 }, pids: { max: 64 }, cpu: { quota: 50_000, period: 100_000 } }

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

interface Row {
  tool: string
  phases: Record<string, number[]>
}

async function ours(iterations: number, warmup: number): Promise<Row> {
  const host = await detect()
  const phases: Record<string, number[]> = { 'create+limit': [], 'place+run': [], destroy: [], total: [] }
  for (let i = 0; i < warmup + iterations; i++) {
    const t0 = performance.now()
    const cg = await Cgroup.create(`bench-${process.pid}-${i}`, LIMITS, { host, parent: 'ctr-bench' })
    const t1 = performance.now()
    let t2 = t1
    try {
      const child = await spawn({ argv: ['/bin/true'], cgroup: cg.placement, stdio: ['ignore', 'ignore', 'ignore'] })
      await child.exited
      t2 = performance.now()
    } finally {
      await cg.destroy()
    }
    const t3 = performance.now()
    if (i < warmup) continue
    phases['create+limit']!.push(t1 - t0)
    phases['place+run']!.push(t2 - t1)
    phases.destroy!.push(t3 - t2)
    phases.total!.push(t3 - t0)
  }
  return { tool: `ours (${host.mode})`, phases }
}

/** The same with libcgroup's tools, one process per step as a shell script would do it. */
async function cgroupTools(iterations: number, warmup: number): Promise<Row | string> {
  try {
    await run('cgcreate', ['-h'])
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'cgroup-tools not installed (apt-get install cgroup-tools): row skipped'
  }
  const host = await detect()
  const v2 = host.mode === 'unified'
  // Below our own cgroup in each hierarchy, like ours (cgcreate paths are from the hierarchy root).
  const ownOf = (c: string) => (v2 ? host.unified!.own : host.legacy.find((h) => h.controllers.includes(c))!.own)
  const groups = (name: string) => ['memory', 'pids', 'cpu'].flatMap((c) => ['-g', `${c}:${ownOf(c).replace(/\/$/, '')}/${name}`])
  const sets = v2
    ? ['-r', `memory.max=${LIMITS.memory.max}`, '-r', `pids.max=${LIMITS.pids.max}`, '-r', `cpu.max=${LIMITS.cpu.quota} ${LIMITS.cpu.period}`]
    : ['-r', `memory.limit_in_bytes=${LIMITS.memory.max}`, '-r', `pids.max=${LIMITS.pids.max}`, '-r', `cpu.cfs_quota_us=${LIMITS.cpu.quota}`, '-r', `cpu.cfs_period_us=${LIMITS.cpu.period}`]
  const phases: Record<string, number[]> = { 'create+limit': [], 'place+run': [], destroy: [], total: [] }
  for (let i = 0; i < warmup + iterations; i++) {
    const name = `ctr-bench-tools/${process.pid}-${i}`
    const t0 = performance.now()
    await run('cgcreate', groups(name))
    for (const c of ['memory', 'pids', 'cpu']) {
      const mine = sets.filter((_, k) => k % 2 === 1 && sets[k]!.startsWith(c)).flatMap((r) => ['-r', r])
      await run('cgset', [...mine, `${ownOf(c).replace(/\/$/, '')}/${name}`])
    }
    const t1 = performance.now()
    await run('cgexec', [...groups(name), '/bin/true'])
    const t2 = performance.now()
    await run('cgdelete', ['-r', ...groups(name)])
    const t3 = performance.now()
    if (i < warmup) continue
    phases['create+limit']!.push(t1 - t0)
    phases['place+run']!.push(t2 - t1)
    phases.destroy!.push(t3 - t2)
    phases.total!.push(t3 - t0)
  }
  // cgdelete leaves some hierarchies behind (here: cpu when cpu and cpuacct are mounted
  // apart): remove what is left ourselves, outside the timings.
  const mountOf = (c: string) => (v2 ? host.unified!.mount : host.legacy.find((h) => h.controllers.includes(c))!.mount)
  let leftovers = 0
  for (const c of ['memory', 'pids', 'cpu']) {
    const parent = `${mountOf(c)}${ownOf(c).replace(/\/$/, '')}/ctr-bench-tools`
    for (const e of await readdir(parent, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue
      leftovers++
      await rmdir(`${parent}/${e.name}`).catch(() => undefined)
    }
    await rmdir(parent).catch(() => undefined)
  }
  if (leftovers > 0) console.error(`cgdelete left ${leftovers} cgroup directories behind; removed them`)
  return { tool: 'cgcreate/cgset/cgexec/cgdelete', phases }
}

function print(rows: Row[], notes: string[]): void {
  const line = (cols: string[]) => console.log(cols.map((c, i) => (i === 0 ? c.padEnd(34) : c.padStart(12))).join(''))
  line(['tool / phase', 'p50 ms', 'p99 ms', 'mean ms', 'per s'])
  for (const r of rows) {
    console.log(r.tool)
    for (const [phase, samples] of Object.entries(r.phases)) {
      const s = [...samples].sort((a, b) => a - b)
      const mean = s.reduce((a, b) => a + b, 0) / s.length
      line([`  ${phase}`, percentile(s, 50).toFixed(2), percentile(s, 99).toFixed(2), mean.toFixed(2), phase === 'total' ? (1000 / mean).toFixed(0) : ''])
    }
  }
  for (const n of notes) console.log(`note: ${n}`)
}

async function main(): Promise<void> {
  const iterations = arg('--iterations', 200)
  const warmup = arg('--warmup', 10)
  const rows: Row[] = [await ours(iterations, warmup)]
  const notes: string[] = []
  const tools = await cgroupTools(iterations, warmup)
  if (typeof tools === 'string') notes.push(tools)
  else rows.push(tools)
  console.log(`${iterations} cgroups per tool, ${warmup} warm-up; node ${process.version}, ${process.platform} ${(await import('node:os')).release()}`)
  print(rows, notes)
}

await main()
