/**
 * Hello from a container: `echo` in a busybox container with its own pid, mount, uts, ipc and
 * network namespaces, a cgroup with limits, an overlay root and Docker's security defaults.
 *
 * As root, from the repository root, after a build:
 *
 *     node examples/dist/hello.js              # an image built offline from /bin/busybox
 *     node examples/dist/hello.js alpine       # any image from a registry (needs internet)
 *
 * Images and containers live in /var/lib/ctr and /run/ctr ($CTR_ROOT and $CTR_STATE_ROOT).
 */
import { run, RuntimeError } from '@ctr/runtime'
import { busyboxImage } from './busybox-image.js'

const image = process.argv[2] ?? (await busyboxImage())

try {
  const r = await run({
    image,
    cmd: ['sh', '-c', 'echo "hello from a container: $(hostname), pid $$"'],
    memory: '64m', // OOM-killed beyond this
    pids: 64,      // no fork bombs
    cpus: 0.5,     // half a CPU
    network: 'none',
    timeout: 10_000,
  })
  process.stdout.write(r.stdout)
  console.log(`image        ${image}`)
  console.log(`exit code    ${r.exitCode}${r.signal ? ` (signal ${r.signal})` : ''}, oomKilled ${r.oomKilled}, timedOut ${r.timedOut}`)
  console.log(`cpu          ${(r.usage.cpuUsec / 1000).toFixed(1)} ms, peak memory ${r.usage.memoryPeak === undefined ? 'n/a' : `${(r.usage.memoryPeak / 1024).toFixed(0)} KiB`}`)
  const t = r.timings
  console.log(`timings      create ${t.create.toFixed(1)} ms, run ${t.run.toFixed(1)} ms, cleanup ${t.cleanup.toFixed(1)} ms, total ${t.total.toFixed(1)} ms`)
  process.exitCode = r.exitCode ?? 1
} catch (err) {
  // Invalid options name their field; a program that cannot start names the step that failed.
  if (err instanceof RuntimeError) console.error(`run failed [${err.code}]: ${err.message}`)
  else console.error(err)
  process.exitCode = 1
}
