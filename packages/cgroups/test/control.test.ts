/**
 * Placement (a spawned process is in the cgroup before it execs, in every hierarchy), adding
 * an existing pid, listing processes, freeze/thaw of a running counter, kill, and the
 * populated/empty events.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Cgroup, type CgroupEvent, type CgroupHost } from '../src/index.js'
import {
  allDirs,
  BUSYBOX,
  cgroupError,
  cgroupPathIn,
  exitWithin,
  expectedMembership,
  host,
  cleanup,
  createCgroup,
  run,
  sleep,
  start,
  startIn,
  uniqueName,
  waitFor,
  withCgroup,
} from './helpers/util.js'

afterEach(cleanup)

const h: CgroupHost = await host()
const has = (c: string) => h.controllers.includes(c as never)

function expectMember(text: string, cg: Parameters<typeof expectedMembership>[1], what: string) {
  const want = expectedMembership(h, cg)
  expect(want.length).toBeGreaterThan(0)
  for (const { controller, path: p } of want) {
    expect(cgroupPathIn(text, controller), `${what} in the ${controller ?? 'v2'} hierarchy`).toBe(p)
  }
}

describe('placement', () => {
  it('a process spawned with cgroup: cg.placement is in the cgroup before exec, in every hierarchy', async () => {
    await withCgroup(undefined, async (cg) => {
      const r = await run({ argv: ['cat', '/proc/self/cgroup'], cgroup: cg.placement })
      expect(r.code).toBe(0)
      expectMember(r.stdout, cg, 'cat')
    })
  })

  it('its children are in the cgroup too, and processes() lists them all, sorted', async () => {
    await withCgroup(undefined, async (cg) => {
      const child = await startIn(cg, ['sh', '-c', 'sleep 30 & sleep 30 & wait'])
      expect(await waitFor(async () => (await cg.processes()).length === 3)).toBe(true)
      const pids = await cg.processes()
      expect(pids).toContain(child.pid)
      expect([...pids].sort((a, b) => a - b)).toEqual(pids)
      for (const pid of pids) expectMember(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'), cg, `pid ${pid}`)
    })
  })

  it('an empty cgroup lists no processes', async () => {
    await withCgroup(undefined, async (cg) => {
      expect(await cg.processes()).toEqual([])
    })
  })
})

describe('addProcess', () => {
  it('moves a running process into the cgroup in every hierarchy', async () => {
    await withCgroup(undefined, async (cg) => {
      const child = await start({ argv: ['sleep', '30'] })
      const before = fs.readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')
      expect(before).not.toContain(cg.name)
      await cg.addProcess(child.pid)
      expectMember(fs.readFileSync(`/proc/${child.pid}/cgroup`, 'utf8'), cg, 'the moved process')
      expect(await cg.processes()).toEqual([child.pid])
    })
  })

  it('a pid that does not exist is refused with a CgroupError', async () => {
    await withCgroup(undefined, async (cg) => {
      const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'))
      let pid = max - 1
      while (fs.existsSync(`/proc/${pid}`)) pid--
      const err = await cgroupError(cg.addProcess(pid))
      expect(err.code).toMatch(/^ERR_CGROUP_/)
      expect(await cg.processes()).toEqual([])
    })
  })

  it('an invalid pid (0, negative, non-integer) is ERR_CGROUP_INVALID', async () => {
    await withCgroup(undefined, async (cg) => {
      for (const pid of [0, -1, 1.5]) expect((await cgroupError(cg.addProcess(pid))).code, String(pid)).toBe('ERR_CGROUP_INVALID')
    })
  })
})

describe.runIf(has('freezer'))('freeze and thaw', () => {
  it('freeze stops a counter, thaw resumes it; frozen() reflects the state', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-cgroups-test-'))
    try {
      const file = path.join(dir, 'counter')
      fs.writeFileSync(file, '')
      await withCgroup(undefined, async (cg) => {
        const size = () => fs.statSync(file).size
        const counter = await startIn(cg, [BUSYBOX, 'sh', '-c', `while :; do echo x >> ${file}; done`])
        expect(await cg.frozen()).toBe(false)
        expect(await waitFor(() => size() > 0)).toBe(true)

        await cg.freeze()
        expect(await cg.frozen()).toBe(true)
        const s1 = size()
        await sleep(500)
        expect(size(), 'the file grew while frozen').toBe(s1)
        expect(fs.existsSync(`/proc/${counter.pid}`)).toBe(true)

        await cg.freeze() // idempotent
        expect(await cg.frozen()).toBe(true)

        await cg.thaw()
        expect(await cg.frozen()).toBe(false)
        expect(await waitFor(() => size() > s1), 'the file grows again after thaw').toBe(true)
        await cg.thaw() // idempotent
        expect(await cg.frozen()).toBe(false)
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('destroy of a frozen cgroup kills its processes and removes it', async () => {
    const cg = await createCgroup()
    const child = await startIn(cg, ['sleep', '30'])
    await cg.freeze()
    await cg.destroy()
    expect(await exitWithin(child)).toEqual({ code: null, signal: 'SIGKILL' })
    for (const d of allDirs(cg)) expect(fs.existsSync(d)).toBe(false)
  })
})

describe('kill', () => {
  it('empties the cgroup: processes() becomes [] and the children exit by SIGKILL', async () => {
    await withCgroup(undefined, async (cg) => {
      const a = await startIn(cg, ['sleep', '30'])
      const b = await startIn(cg, ['sh', '-c', 'sleep 30 & sleep 30 & wait'])
      const c = await startIn(cg, ['/bin/sh', '-c', 'trap "" TERM INT HUP; while :; do sleep 1; done'])
      expect(await waitFor(async () => (await cg.processes()).length >= 5)).toBe(true)
      await cg.kill()
      expect(await waitFor(async () => (await cg.processes()).length === 0), 'the cgroup is empty').toBe(true)
      for (const child of [a, b, c]) expect(await exitWithin(child)).toEqual({ code: null, signal: 'SIGKILL' })
    })
  })

  it('with another signal, sends that signal to every process', async () => {
    await withCgroup(undefined, async (cg) => {
      const a = await startIn(cg, ['sleep', '30'])
      const b = await startIn(cg, ['sleep', '30'])
      expect(await waitFor(async () => (await cg.processes()).length === 2)).toBe(true)
      await cg.kill('SIGTERM')
      expect(await exitWithin(a)).toEqual({ code: null, signal: 'SIGTERM' })
      expect(await exitWithin(b)).toEqual({ code: null, signal: 'SIGTERM' })
      expect(await waitFor(async () => (await cg.processes()).length === 0)).toBe(true)
    })
  })

  it.runIf(has('freezer'))('kills a frozen cgroup too', async () => {
    await withCgroup(undefined, async (cg) => {
      const a = await startIn(cg, ['sleep', '30'])
      await cg.freeze()
      await cg.kill()
      expect(await exitWithin(a)).toEqual({ code: null, signal: 'SIGKILL' })
      expect(await waitFor(async () => (await cg.processes()).length === 0)).toBe(true)
    })
  })

  it('an empty cgroup: kill resolves', async () => {
    await withCgroup(undefined, async (cg) => {
      await cg.kill()
      expect(await cg.processes()).toEqual([])
    })
  })
})

describe.runIf(h.unified !== undefined)('populated and empty events (cgroup.events)', () => {
  it('watch() emits populated when a process enters and empty when the last one leaves', async () => {
    await withCgroup(undefined, async (cg) => {
      const w = await cg.watch() // API.md: watch(): CgroupWatcher; src returns a Promise — await works for both
      try {
        const events: CgroupEvent[] = []
        let populated = 0
        let empty = 0
        w.on('event', (ev: CgroupEvent) => events.push(ev))
        w.on('populated', () => populated++)
        w.on('empty', () => empty++)
        await sleep(300)
        const child = await startIn(cg, ['sleep', '30'])
        expect(await waitFor(() => populated > 0, 5000), `events: ${JSON.stringify(events)}`).toBe(true)
        child.kill('SIGKILL')
        await child.exited
        expect(await waitFor(() => empty > 0, 5000), `events: ${JSON.stringify(events)}`).toBe(true)
        expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['populated', 'empty']))
      } finally {
        w.close()
      }
    })
  })

  it('events() yields the same, and ends when its signal aborts', async () => {
    await withCgroup(undefined, async (cg) => {
      const ac = new AbortController()
      const seen: string[] = []
      const loop = (async () => {
        try {
          for await (const ev of cg.events({ signal: ac.signal })) {
            seen.push(ev.type)
            if (ev.type === 'empty') break
          }
        } catch (err) {
          if (!ac.signal.aborted) throw err
        }
      })()
      await sleep(300)
      const child = await startIn(cg, ['sleep', '30'])
      await waitFor(() => seen.includes('populated'), 5000)
      child.kill('SIGKILL')
      await child.exited
      const timer = setTimeout(() => ac.abort(), 5000)
      await loop
      clearTimeout(timer)
      expect(seen).toEqual(expect.arrayContaining(['populated', 'empty']))
    })
  })

  it('an aborted events() iterator finishes', async () => {
    await withCgroup(undefined, async (cg) => {
      const ac = new AbortController()
      const loop = (async () => {
        try {
          for await (const _ of cg.events({ signal: ac.signal })) {
            // nothing happens in this cgroup
          }
        } catch {
          // an AbortError is fine too
        }
        return 'done'
      })()
      await sleep(200)
      ac.abort()
      await expect(loop).resolves.toBe('done')
    })
  })
})
