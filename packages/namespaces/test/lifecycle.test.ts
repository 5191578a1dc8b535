/**
 * Lifecycle: the child dies with its parent, ref/unref, many spawns in a row and at once
 * leak nothing, and Node's own child_process keeps working beside ours.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, inject, it } from 'vitest'
import { readText } from '../src/index.js'
import {
  childrenOf,
  fdCount,
  mountinfo,
  newMounts,
  procStat,
  reap,
  start,
  startHelper,
  stillSame,
  waitFor,
  type HelperProcess,
  type ProcStat,
  type SpawnOpts,
} from './helpers/util.js'

const execFileP = promisify(execFile)

/** Starts spawn-and-wait.mjs and returns the helper and the host pid of our child. */
async function helperWithChild(opts: SpawnOpts, mode: 'stay' | 'unref'): Promise<{ h: HelperProcess; child: ProcStat }> {
  const h = startHelper('spawn-and-wait.mjs', [inject('nsEntry'), JSON.stringify(opts), mode])
  const ok = await waitFor(() => h.stdout().includes('\n') || h.proc.exitCode !== null, 15000)
  expect(ok, 'helper did not report a pid').toBe(true)
  const line = h.stdout().split('\n')[0] ?? ''
  expect(line, h.stderr()).not.toBe('')
  const { pid } = JSON.parse(line) as { pid: number }
  const st = procStat(pid)
  expect(st, `child ${pid} not found`).not.toBeNull()
  return { h, child: st! }
}

function killIfSame(st: ProcStat | undefined): void {
  if (st && stillSame(st)) process.kill(st.pid, 'SIGKILL')
}

describe('parent death', () => {
  for (const [name, namespaces] of [
    ['no namespaces', []],
    ['new pid+mnt+net namespaces', ['pid', 'mnt', 'net']],
  ] as const) {
    it(`the child dies when the parent Node process is SIGKILLed (${name})`, async () => {
      let child: ProcStat | undefined
      let h: HelperProcess | undefined
      try {
        ;({ h, child } = await helperWithChild({ argv: ['/bin/sleep', '1000'], namespaces: [...namespaces] }, 'stay'))
        expect(child.comm).toBe('sleep')
        expect(child.ppid).toBe(h.proc.pid)
        expect(stillSame(child)).toBe(true)
        h.proc.kill('SIGKILL')
        expect(await h.exited).toMatchObject({ signal: 'SIGKILL' })
        const died = await waitFor(() => !stillSame(child!), 5000)
        expect(died, `pid ${child.pid} (sleep) survived its parent`).toBe(true)
      } finally {
        if (h && h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGKILL')
        if (h) await h.exited
        killIfSame(child)
      }
    })
  }

  it('unref() lets the parent Node process exit while the child runs', async () => {
    let child: ProcStat | undefined
    let h: HelperProcess | undefined
    try {
      ;({ h, child } = await helperWithChild({ argv: ['/bin/sleep', '1000'] }, 'unref'))
      // without unref the helper would stay for 1000 s; the test timeout would end it
      expect(await h.exited).toEqual({ code: 0, signal: null })
    } finally {
      if (h && h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGKILL')
      if (h) await h.exited
      // whether the child outlives its parent is the parent-death rule's business
      await waitFor(() => !child || !stillSame(child), 5000)
      killIfSame(child)
    }
  })
})

describe('many spawns', () => {
  it('500 spawns in a row leak no fd, zombie or mount', { timeout: 180_000 }, async () => {
    // a first spawn creates what lives as long as the process (the addon's reaper epoll)
    await (await start({ argv: ['/bin/true'] })).exited
    const fdsBefore = fdCount()
    const mountsBefore = mountinfo()
    for (let i = 0; i < 500; i++) {
      const child = await start({
        argv: ['/bin/sh', '-c', `echo ${i}`],
        namespaces: i % 2 === 0 ? ['mnt', 'uts', 'ipc'] : [],
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      const [out, ex] = await Promise.all([readText(child.stdout), child.exited])
      expect(out).toBe(`${i}\n`)
      expect(ex).toEqual({ code: 0, signal: null })
    }
    await waitFor(() => fdCount() <= fdsBefore, 3000)
    expect(fdCount()).toBeLessThanOrEqual(fdsBefore)
    expect(childrenOf(process.pid).filter((p) => p.state === 'Z')).toEqual([])
    expect(childrenOf(process.pid)).toEqual([])
    expect(newMounts(mountsBefore)).toEqual([])
  })

  it('50 concurrent spawns all succeed with code 0', async () => {
    const fdsBefore = fdCount()
    const children = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        start({
          argv: ['/bin/sh', '-c', `echo $$ ${i}`],
          namespaces: ['pid', 'uts'],
          stdio: ['ignore', 'pipe', 'ignore'],
        }),
      ),
    )
    try {
      expect(new Set(children.map((c) => c.pid)).size).toBe(50)
      const results = await Promise.all(children.map(async (c) => ({ out: await readText(c.stdout), ex: await c.exited })))
      results.forEach((r, i) => {
        expect(r.ex).toEqual({ code: 0, signal: null })
        expect(r.out).toBe(`1 ${i}\n`)
      })
    } finally {
      await Promise.all(children.map((c) => reap(c)))
    }
    await waitFor(() => fdCount() <= fdsBefore, 3000)
    expect(fdCount()).toBeLessThanOrEqual(fdsBefore)
    expect(childrenOf(process.pid)).toEqual([])
  })
})

describe("Node's child_process beside ours", () => {
  it('both reap their own children with the right exit codes', async () => {
    const ours = Array.from({ length: 20 }, (_, i) =>
      start({ argv: ['/bin/sh', '-c', `exit ${i % 5}`] }).then(async (c) => ({ i, ex: await c.exited })),
    )
    const theirs = Array.from({ length: 20 }, (_, i) =>
      execFileP('/bin/echo', [`n${i}`]).then((r) => ({ i, stdout: r.stdout })),
    )
    const theirsFailing = Array.from({ length: 10 }, (_, i) =>
      execFileP('/bin/sh', ['-c', `exit ${i + 1}`]).then(
        () => ({ i, code: 0 as number | undefined }),
        (e: { code?: number }) => ({ i, code: e.code }),
      ),
    )
    const [o, t, f] = await Promise.all([Promise.all(ours), Promise.all(theirs), Promise.all(theirsFailing)])
    for (const r of o) expect(r.ex).toEqual({ code: r.i % 5, signal: null })
    for (const r of t) expect(r.stdout).toBe(`n${r.i}\n`)
    for (const r of f) expect(r.code).toBe(r.i + 1)
  })

  it('a long-running child of ours is not reaped by Node, and Node children keep working meanwhile', async () => {
    const child = await start({ argv: ['/bin/sleep', '10'] })
    try {
      for (let i = 0; i < 5; i++) {
        const { stdout } = await execFileP('/bin/echo', ['ok'])
        expect(stdout).toBe('ok\n')
      }
      const st = procStat(child.pid)
      expect(st?.state).not.toBe('Z')
      expect(st?.comm).toBe('sleep')
      expect(child.kill('SIGTERM')).toBe(true)
      expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' })
    } finally {
      await reap(child)
    }
  })
})
