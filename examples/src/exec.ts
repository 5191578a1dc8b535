/**
 * A container's lifecycle, and exec into it: create and start a long-running container, run
 * other processes inside it (`ps`, a file written by one exec and read by the next), pause
 * and resume it (its counter stops while frozen), read its stats, processes, events and log,
 * stop it gracefully, delete it.
 *
 * As root, from the repository root, after a build:
 *
 *     node examples/dist/exec.js
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { create, type ContainerEvent, type CreateOptions } from '@ctr/runtime'
import { busyboxImage } from './busybox-image.js'

// Appends a count to /tmp/count ten times a second; on SIGTERM says goodbye and exits 0.
const script = 'trap "echo bye; exit 0" TERM; echo started; i=0; while :; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.1; done'

// (The cast: @ctr/runtime's CreateOptions type lost its fields; it goes once that is fixed.)
const c = await create({ image: await busyboxImage(), cmd: ['sh', '-c', script], name: `exec-demo-${process.pid}`, memory: '64m', pids: 64 } as CreateOptions)
const events: ContainerEvent[] = []
const watching = (async () => { for await (const e of c.events()) events.push(e) })()
try {
  await c.start() // output goes to the container's log (Docker's json-file format)
  console.log(`started ${c.name} (${c.id.slice(0, 12)}), init is host pid ${c.pid}`)

  // exec: the same pid namespace (sh is pid 1 in there), files, network, cgroup and limits.
  console.log('--- exec ps')
  console.log((await c.exec(['ps'])).stdout.trimEnd())
  await c.exec(['sh', '-c', 'echo written by one exec > /tmp/note'])
  const note = await c.exec(['cat', '/tmp/note'])
  console.log(`--- exec cat /tmp/note: ${note.stdout.trim()} (exit code ${note.exitCode})`)
  const missing = await c.exec(['test', '-e', '/etc/shadow'])
  console.log(`--- exec test -e /etc/shadow: exit code ${missing.exitCode}`)

  // pause/resume: the cgroup freezer. The counter is read from the host in the snapshot's
  // upper directory, where the container's writes land (its root is mounted only inside its
  // own mount namespace): the number of lines appended so far.
  const upper = path.join(c.state.storeRoot, 'snapshots', c.state.snapshot, 'upper')
  const count = async () => (await fs.readFile(path.join(upper, 'tmp/count'), 'utf8')).split('\n').length - 1
  const over500ms = async (what: string) => {
    const before = await count()
    await sleep(500)
    console.log(`--- ${what}: counter ${before} -> ${await count()} in 500 ms`)
  }
  await over500ms('running')
  await c.pause()
  await over500ms('paused')
  await c.resume()
  await over500ms('resumed')

  const s = await c.stats()
  console.log(`--- stats: memory ${(s.memory.current / 1024).toFixed(0)} KiB, cpu ${(s.cpu.usageUsec / 1000).toFixed(1)} ms, ${s.pids.current} processes (max ${s.pids.max})`)
  console.log('--- top (host pids)')
  for (const p of await c.top()) console.log(`  ${String(p.pid).padStart(7)} ${String(p.ppid).padStart(7)}  uid ${p.uid}  ${p.state}  ${p.command}`)

  const exit = await c.stop({ timeoutMs: 5000 }) // SIGTERM, then SIGKILL after 5 s
  console.log(`--- stopped: exit code ${exit.exitCode}, signal ${exit.signal}`)
  console.log(`--- log: ${(await c.logs()).map((e) => `${e.stream}: ${e.text.trim()}`).join(', ')}`)
} finally {
  await c.delete({ force: true })
  await watching
}
console.log(`--- events: ${events.map((e) => e.type).join(', ')}`)
