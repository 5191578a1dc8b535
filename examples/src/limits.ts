/**
 * Limits that hold, and a result that says what happened:
 *
 * 1. a memory hog in a 32 MiB container is OOM-killed, and `oomKilled` and the peak say so;
 * 2. a fork bomb in a container limited to 32 processes never gets past 32;
 * 3. a busy loop under `cpus: 0.25` gets a quarter of a CPU, and `usage` shows it.
 *
 * As root, from the repository root, after a build:
 *
 *     node examples/dist/limits.js
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { create, run, type CreateOptions } from '@ctr/runtime'
import { busyboxImage } from './busybox-image.js'

const image = await busyboxImage()
const mib = (bytes = 0) => `${(bytes / 2 ** 20).toFixed(1)} MiB`

// 1. Memory: busybox `tail` keeps the current line in memory, and zeros have no newline.
const hog = await run({ image, cmd: ['sh', '-c', 'head -c 1000m /dev/zero | tail'], memory: '32m', timeout: 30_000 })
console.log('memory hog, memory: 32m')
console.log(`  oomKilled ${hog.oomKilled}, exit code ${hog.exitCode}, signal ${hog.signal}, peak memory ${mib(hog.usage.memoryPeak)}`)

// 2. Processes: every shell forks two more, for ever. create() + start() rather than run(),
//    to watch the container's process count from outside while it runs.
const bomb = await create({ image, cmd: ['sh', '-c', 'bomb() { bomb | bomb & }; bomb; while :; do sleep 1; done'], pids: 32, cpus: 0.5 } as CreateOptions) // (cast: see exec.ts)
try {
  await bomb.start({ stdout: 'ignore', stderr: 'ignore' })
  let most = 0
  for (let i = 0; i < 20; i++) {
    most = Math.max(most, (await bomb.stats()).pids.current)
    await sleep(100)
  }
  await bomb.kill('SIGKILL') // SIGKILL goes to every process of the container's cgroup
  const exit = await bomb.wait()
  console.log('fork bomb, pids: 32')
  console.log(`  at most ${most} processes over 2 s, then killed: signal ${exit.signal}`)
} finally {
  await bomb.delete({ force: true })
}

// 3. CPU: a busy loop for 2 s with a quarter of a CPU (a CFS quota of 25 ms per 100 ms).
const spin = await run({ image, cmd: ['sh', '-c', 'while :; do :; done'], cpus: 0.25, timeout: 2000 })
const share = spin.usage.cpuUsec / 1000 / spin.timings.run
console.log('busy loop, cpus: 0.25, timeout: 2000')
console.log(`  timedOut ${spin.timedOut}, cpu ${(spin.usage.cpuUsec / 1000).toFixed(0)} ms in ${spin.timings.run.toFixed(0)} ms: ${(share * 100).toFixed(0)}% of one CPU`)
