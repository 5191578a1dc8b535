/**
 * native/init/ctr-init as PID 1 of a real pid namespace (started with @ctr/namespaces'
 * spawn): exit codes, signal forwarding and zombie reaping — each shown against the same
 * program without ctr-init, where PID 1 misbehaves.
 */
import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { allProcesses, procStat, waitFor } from '@ctr/fixtures'
import { readText } from '@ctr/namespaces'
import { containerOptions, makeRootfs, runContainer, waitForOutput, withContainer, type Child } from './helpers/container.js'

let root: string
let dispose: () => void

beforeAll(async () => {
  ;({ root, dispose } = await makeRootfs({ 'sbin/ctr-init': inject('ctrInit') }))
})
afterAll(() => dispose?.())

const INIT = ['/sbin/ctr-init', '--']
const sh = (script: string, init = true) => containerOptions(root, [...(init ? INIT : []), '/bin/sh', '-c', script])

/** Zombies among the processes of the container (same pid namespace as its pid 1). */
function zombiesIn(child: Child): string[] {
  const ns = fs.readlinkSync(`/proc/${child.pid}/ns/pid_for_children`)
  return allProcesses()
    .filter((p) => p.state === 'Z')
    .filter((p) => {
      try {
        return fs.readlinkSync(`/proc/${p.pid}/ns/pid`) === ns
      } catch {
        return false
      }
    })
    .map((p) => `${p.pid} ${p.comm}`)
}

describe('ctr-init', () => {
  it('exits with the exit code of its child', async () => {
    for (const code of [0, 1, 7, 255]) {
      expect(await runContainer(sh(`exit ${code}`))).toMatchObject({ code, signal: null })
    }
  })

  it('exits with 128 + the signal when its child was killed by one', async () => {
    expect(await runContainer(sh('kill -KILL $$'))).toMatchObject({ code: 137, signal: null })
    expect(await runContainer(sh('kill -SEGV $$'))).toMatchObject({ code: 139, signal: null })
  })

  it('passes stdio, arguments and the PATH search to the program', async () => {
    const r = await runContainer(containerOptions(root, [...INIT, 'echo', 'a b', 'c']))
    expect(r).toMatchObject({ code: 0, stdout: 'a b c\n', stderr: '' })
  })

  it('runs the program as pid 2, itself as pid 1', async () => {
    const r = await runContainer(sh('echo $$; cat /proc/1/comm'))
    expect(r.stdout).toBe('2\nctr-init\n')
  })

  it('exits 127 with a message when the program does not exist, 2 without one', async () => {
    const r = await runContainer(containerOptions(root, [...INIT, '/nonexistent']))
    expect(r.code).toBe(127)
    expect(r.stderr).toMatch(/ctr-init: exec \/nonexistent: No such file or directory/)
    expect((await runContainer(containerOptions(root, ['/sbin/ctr-init']))).code).toBe(2)
  })

  it('forwards SIGTERM to a program that never expected to be PID 1 (control: as PID 1 it ignores it)', async () => {
    const script = 'echo ready; while :; do sleep 0.05; done'
    // Control: the shell as PID 1 has no handler, so the kernel drops SIGTERM.
    await withContainer(sh(script, false), async (c) => {
      await waitForOutput(c.stdout, /ready/)
      c.kill('SIGTERM')
      const exited = await Promise.race([c.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 500))])
      expect(exited).toBe(false)
    })
    await withContainer(sh(script), async (c) => {
      await waitForOutput(c.stdout, /ready/)
      c.kill('SIGTERM')
      expect(await c.exited).toEqual({ code: 128 + 15, signal: null })
    })
  })

  it('forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH and SIGCONT to a handler', async () => {
    const signals = ['TERM', 'INT', 'HUP', 'QUIT', 'USR1', 'USR2', 'WINCH', 'CONT'] as const
    const traps = signals.map((s) => `trap 'echo got ${s}' ${s}`).join('; ')
    await withContainer(sh(`${traps}; trap 'exit 9' ALRM; echo ready; while :; do sleep 0.02; done`), async (c) => {
      let out = await waitForOutput(c.stdout, /ready/)
      for (const s of signals) {
        c.kill(`SIG${s}`)
        out += await waitForOutput(c.stdout, new RegExp(`got ${s}`))
      }
      c.kill('SIGALRM')
      const [rest, ex] = await Promise.all([readText(c.stdout), c.exited])
      expect(ex).toEqual({ code: 9, signal: null })
      for (const s of signals) expect(out + rest).toContain(`got ${s}`)
    })
  })

  it('reaps orphaned zombies (control: a PID 1 that never waits leaves them)', async () => {
    // Two orphans that exit after 0.1 s, then the program becomes a sleep that never waits.
    const script = '(sleep 0.1 &); (sleep 0.1 &); exec sleep 30'
    await withContainer(sh(script, false), async (c) => {
      expect(await waitFor(() => zombiesIn(c).length === 2, 5000)).toBe(true)
    })
    await withContainer(sh(script), async (c) => {
      await new Promise((r) => setTimeout(r, 600))
      expect(zombiesIn(c)).toEqual([])
      expect(procStat(c.pid)?.comm).toBe('ctr-init')
    })
  })

  it('exits as soon as its child does, even with other processes left (the kernel kills those)', async () => {
    const started = Date.now()
    const r = await runContainer(sh('sleep 30 & exit 5'))
    expect(r.code).toBe(5)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('-g forwards to the whole process group: a background job dies too (control: without -g it lives on)', async () => {
    // The shell survives SIGTERM (a trap); the background sleep only gets it with -g. The
    // second wait returns at once once the sleep is dead (143, or 127 when already reaped).
    // "ready" only once the job has exec'd sleep: a TERM between its fork and exec would run
    // the inherited trap instead and leave it alive.
    const script = (secs: number) =>
      `trap 'echo got TERM' TERM; sleep ${secs} & while [ "$(cat /proc/$!/comm)" != sleep ]; do :; done; echo ready; wait; wait $!; echo "status $?"`
    const timed = async (argv: string[]) =>
      withContainer(containerOptions(root, argv), async (c) => {
        await waitForOutput(c.stdout, /ready/)
        const t = Date.now()
        c.kill('SIGTERM')
        const [out, ex] = await Promise.all([readText(c.stdout), c.exited])
        return { ms: Date.now() - t, out, ex }
      })
    const g = await timed(['/sbin/ctr-init', '-g', '--', '/bin/sh', '-c', script(30)])
    expect(g.ms).toBeLessThan(5000)
    expect(g.out).toMatch(/got TERM\nstatus (143|127)\n/)
    expect(g.ex).toEqual({ code: 0, signal: null })
    const plain = await timed([...INIT, '/bin/sh', '-c', script(2)])
    expect(plain.ms).toBeGreaterThan(1000)
    expect(plain.out).toMatch(/got TERM\nstatus 0\n/)
  })
})
