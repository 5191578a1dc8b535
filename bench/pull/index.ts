/**
 * bench/pull — pulling an image from the local registry into an OCI layout: ours
 * (`RegistryClient.pull`) against `skopeo copy docker://… oci:…` (Debian's skopeo), in one
 * run, alternating, each in its own process: wall time and peak RSS. First a ~100 MiB
 * three-layer image, then a 1 GiB single layer to show memory stays flat in blob size.
 *
 *   node bench/dist/pull/index.js [--rounds N] [--skip-1g]
 *   node bench/dist/pull/index.js --child REF DIR HOST    (internal: one pull of ours)
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

/** Runs a command, sampling its VmHWM (peak resident set) until it exits. */
function measure(cmd: string, args: string[]): Promise<{ ms: number; peakRssMiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
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
  const { startRegistry, makeImage, pushImage, ensureTools } = await import('@ctr/registry-harness')
  await ensureTools()
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-bench-pull-'))
  const registry = await startRegistry()
  const self = fileURLToPath(import.meta.url)
  try {
    const images = [
      { label: '~100 MiB, 3 layers', layers: [50 * MiB, 30 * MiB, 20 * MiB] },
      ...(argv.includes('--skip-1g') ? [] : [{ label: '1 GiB, 1 layer', layers: [1024 * MiB] }]),
    ]
    console.log(`${rounds} rounds per tool, alternating; node ${process.version}; skopeo from Debian`)
    console.log(`${'image'.padEnd(22)}${'tool'.padEnd(16)}${'p50 s'.padStart(9)}${'min s'.padStart(9)}${'MiB/s'.padStart(9)}${'peak RSS MiB'.padStart(15)}`)
    for (const spec of images) {
      const built = await makeImage({ layers: spec.layers, dir: path.join(work, `src-${spec.layers.length}`), repository: 'bench/pull', tag: `t${spec.layers.length}` })
      const pushed = await pushImage(registry, built)
      const total = spec.layers.reduce((a, b) => a + b, 0)
      // "ours" flushes every blob to disk before renaming it into place (crash-safe, the
      // default); "ours, no fsync" does not, like skopeo.
      const tools = ['ours', 'ours, no fsync', 'skopeo']
      const results: Record<string, { ms: number; peakRssMiB: number }[]> = Object.fromEntries(tools.map((t) => [t, []]))
      for (let r = 0; r < rounds; r++) {
        for (const tool of r % 2 === 0 ? tools : [...tools].reverse()) {
          const dest = path.join(work, `dest-${r}`)
          const m =
            tool === 'skopeo'
              ? await measure('skopeo', ['copy', '--insecure-policy', '--src-tls-verify=false', `docker://${pushed.reference}`, `oci:${dest}:latest`])
              : await measure(process.execPath, [self, '--child', pushed.reference, dest, registry.host, tool === 'ours' ? 'sync' : 'nosync'])
          results[tool]!.push(m)
          await fs.rm(dest, { recursive: true, force: true })
        }
      }
      for (const tool of tools) {
        const ms = results[tool]!.map((x) => x.ms).sort((a, b) => a - b)
        const p50 = ms[Math.floor(ms.length / 2)]!
        const rss = Math.max(...results[tool]!.map((x) => x.peakRssMiB))
        console.log(`${spec.label.padEnd(22)}${tool.padEnd(16)}${(p50 / 1000).toFixed(2).padStart(9)}${(ms[0]! / 1000).toFixed(2).padStart(9)}${(total / MiB / (p50 / 1000)).toFixed(0).padStart(9)}${rss.toFixed(0).padStart(15)}`)
      }
    }
  } finally {
    await registry.stop()
    await fs.rm(work, { recursive: true, force: true })
  }
}

await main()
