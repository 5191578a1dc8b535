/**
 * bench/pull — pulling an image from the local registry into an OCI layout: ours
 * (`RegistryClient.pull`) against `skopeo copy docker://… oci:…` (Debian's skopeo), in one
 * run, alternating, each in its own process (started once the machine is idle): wall time
 * and peak RSS. First a ~100 MiB three-layer image, then a 1 GiB single layer to show memory
 * stays flat in blob size.
 *
 * "ours" is `dist/pull/child.bundle.mjs`: pull/child.ts bundled by esbuild, as a CLI built on
 * the registry client would ship (a fresh Node process per pull, so start-up counts). "ours,
 * unbundled" is the same pull importing the workspace packages as they are published (this
 * file's --child mode): what a script that imports `@ctr/registry-client` pays.
 *
 *   node bench/dist/pull/index.js [--rounds N] [--skip-1g] [--keep-env]
 *   node bench/dist/pull/index.js --child REF DIR HOST [sync|nosync]   (internal: one unbundled pull)
 *
 * Our child runs without NODE_EXTRA_CA_CERTS (unless --keep-env): pointed at a whole CA bundle,
 * as on some CI machines, it makes every Node process parse it at start-up (~50–90 ms here) before
 * any of our code runs, and these pulls are plain HTTP to 127.0.0.1. skopeo reads no such thing.
 */
import { spawn } from 'node:child_process'
import { promises as fs, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const MiB = 2 ** 20

async function childPull(ref: string, dir: string, host: string, fsync: boolean): Promise<void> {
  const { RegistryClient, OciLayout } = await import('@ctr/registry-client')
  const client = new RegistryClient({ insecure: [host], dockerConfig: false })
  await client.pull(ref, { into: await OciLayout.open(dir, { fsync }), concurrency: 3 })
  await client.close()
}

/** CPU time counters (idle, total) from /proc/stat. */
function cpuTimes(): { idle: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) }
}

/**
 * Waits (up to `maxMs`) until the machine's CPUs are at least 90% idle over half a second, so a
 * measurement does not start in the middle of someone else's build; false if it never was.
 */
async function waitForIdle(maxMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + maxMs
  do {
    const a = cpuTimes()
    await new Promise((r) => setTimeout(r, 500))
    const b = cpuTimes()
    if ((b.idle - a.idle) / Math.max(1, b.total - a.total) >= 0.9) return true
  } while (Date.now() < deadline)
  return false
}

/** Runs a command, sampling its VmHWM (peak resident set) until it exits. */
function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; peakRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    let peak = 0
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peak = Math.max(peak, Number(m[1]) / 1024)
      } catch {
        // exited
      }
    }
    const timer = setInterval(sample, 20)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearInterval(timer)
      const ms = performance.now() - t0
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`))
      else resolve({ ms, peakRssMiB: peak })
    })
  })
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--child') return childPull(argv[1]!, argv[2]!, argv[3]!, argv[4] !== 'nosync')
  const rounds = argv.includes('--rounds') ? Number(argv[argv.indexOf('--rounds') + 1]) : 3
  const { NODE_EXTRA_CA_CERTS: extraCa, ...cleanEnv } = process.env
  const childEnv = argv.includes('--keep-env') ? process.env : cleanEnv
  const { startRegistry, makeImage, pushImage, ensureTools } = await import('@ctr/registry-harness')
  const self = fileURLToPath(import.meta.url)
  const bundle = path.join(path.dirname(self), 'child.bundle.mjs')
  await ensureTools()
  try {
    await fs.access(bundle)
  } catch {
    throw new Error(`${bundle} is missing: build the bench first (corepack pnpm --filter @ctr/bench... build)`)
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-bench-pull-'))
  const registry = await startRegistry()
  try {
    const images = [
      { label: '~100 MiB, 3 layers', layers: [50 * MiB, 30 * MiB, 20 * MiB] },
      ...(argv.includes('--skip-1g') ? [] : [{ label: '1 GiB, 1 layer', layers: [1024 * MiB] }]),
    ]
    let busyStarts = 0
    console.log(`${rounds} rounds per tool, alternating, each run started once the CPUs are 90% idle; node ${process.version}; skopeo from Debian`)
    if (extraCa !== undefined) console.log(`NODE_EXTRA_CA_CERTS=${extraCa} ${childEnv === process.env ? 'kept' : 'unset'} for our child (--keep-env keeps it)`)
    console.log(`${'image'.padEnd(22)}${'tool'.padEnd(17)}${'p50 s'.padStart(9)}${'min s'.padStart(9)}${'MiB/s'.padStart(9)}${'peak RSS MiB'.padStart(15)}`)
    for (const spec of images) {
      const built = await makeImage({ layers: spec.layers, dir: path.join(work, `src-${spec.layers.length}`), repository: 'bench/pull', tag: `t${spec.layers.length}` })
      const pushed = await pushImage(registry, built)
      const total = spec.layers.reduce((a, b) => a + b, 0)
      // "ours" flushes every blob to disk before renaming it into place (crash-safe, the
      // default); "ours, no fsync" does not, like skopeo. Both run the bundle; "ours, unbundled"
      // is "ours" loading the packages from node_modules.
      const tools = ['ours', 'ours, no fsync', 'ours, unbundled', 'skopeo']
      const results: Record<string, { ms: number; peakRssMiB: number }[]> = Object.fromEntries(tools.map((t) => [t, []]))
      for (let r = 0; r < rounds; r++) {
        for (const tool of r % 2 === 0 ? tools : [...tools].reverse()) {
          const dest = path.join(work, `dest-${r}`)
          if (!(await waitForIdle())) busyStarts++
          const m =
            tool === 'skopeo'
              ? await measure('skopeo', ['copy', '--insecure-policy', '--src-tls-verify=false', `docker://${pushed.reference}`, `oci:${dest}:latest`])
              : tool === 'ours, unbundled'
                ? await measure(process.execPath, [self, '--child', pushed.reference, dest, registry.host, 'sync'], childEnv)
                : await measure(process.execPath, [bundle, pushed.reference, dest, registry.host, tool === 'ours' ? 'sync' : 'nosync'], childEnv)
          results[tool]!.push(m)
          await fs.rm(dest, { recursive: true, force: true })
        }
      }
      for (const tool of tools) {
        const ms = results[tool]!.map((x) => x.ms).sort((a, b) => a - b)
        const p50 = ms[Math.floor(ms.length / 2)]!
        const rss = Math.max(...results[tool]!.map((x) => x.peakRssMiB))
        console.log(`${spec.label.padEnd(22)}${tool.padEnd(17)}${(p50 / 1000).toFixed(2).padStart(9)}${(ms[0]! / 1000).toFixed(2).padStart(9)}${(total / MiB / (p50 / 1000)).toFixed(0).padStart(9)}${rss.toFixed(0).padStart(15)}`)
      }
    }
    if (busyStarts > 0) console.log(`(${busyStarts} run(s) started on a busy machine after waiting 60 s: figures are noisy)`)
  } finally {
    await registry.stop()
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main()
