/**
 * Each limit is enforced and seen: a memory hog is OOM-killed and the OOM event arrives
 * (through events() and watch()); pids.max stops a fork loop; a cpu quota bounds a busy loop.
 * Only the effect of the kernel's limit is asserted, with generous margins — never the speed
 * of our own code.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { CgroupEvent, CgroupHost } from '../src/index.js'
import { BUSYBOX, host, MiB, cleanup, sleep, startIn, waitFor, withCgroup } from './helpers/util.js'

afterEach(cleanup)

const h: CgroupHost = await host()
const has = (c: string) => h.controllers.includes(c as never)
/** Where the memory controller is: v2 reports oom_kill (memory.events), v1 oom (memory.oom_control). */
const memoryOnV2 = h.mode === 'unified'
const oomType = memoryOnV2 ? 'oom_kill' : 'oom'

/** Holds 200 MiB in a shell variable (far over the 32 MiB limit); prints "survived" if not killed. */
const HOG = [BUSYBOX, 'sh', '-c', `x=$(${BUSYBOX} head -c 200m /dev/zero | ${BUSYBOX} tr '\\0' a); echo survived`]

describe.runIf(has('memory'))('memory.max', { timeout: 60_000 }, () => {
  it(`a hog over 32 MiB is OOM-killed (SIGKILL) and an '${oomType}' event arrives through events()`, async () => {
    await withCgroup({ memory: { max: 32 * MiB } }, async (cg) => {
      const ac = new AbortController()
      const events: CgroupEvent[] = []
      const iter = cg.events({ signal: ac.signal })
      const collecting = (async () => {
        try {
          for await (const ev of { [Symbol.asyncIterator]: () => iter }) {
            events.push(ev)
            if (ev.type === oomType) break
          }
        } catch (err) {
          if (!ac.signal.aborted) throw err
        }
      })()
      await sleep(300) // let the watch be registered before anything can happen
      const hog = await startIn(cg, HOG, { stdio: ['ignore', 'pipe', 'ignore'] })
      const out: string[] = []
      hog.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d))
      const ex = await hog.exited
      expect(ex.signal).toBe('SIGKILL')
      expect(out.join('')).not.toContain('survived')
      const timer = setTimeout(() => ac.abort(), 10_000)
      await collecting
      clearTimeout(timer)
      const oom = events.find((e) => e.type === oomType)
      expect(oom, `events seen: ${JSON.stringify(events)}`).toBeDefined()
      expect((oom as { count: number }).count).toBeGreaterThanOrEqual(1)
    })
  })

  it(`the '${oomType}' event arrives through watch() as 'event' and as 'oom'`, async () => {
    await withCgroup({ memory: { max: 32 * MiB } }, async (cg) => {
      const w = await cg.watch() // API.md: watch(): CgroupWatcher; src returns a Promise — await works for both
      try {
        const events: CgroupEvent[] = []
        const ooms: unknown[] = []
        w.on('event', (ev: CgroupEvent) => events.push(ev))
        w.on('oom', (ev: unknown) => ooms.push(ev))
        w.on('error', (err: unknown) => events.push({ type: 'error', err } as never))
        await sleep(300)
        const hog = await startIn(cg, HOG)
        expect((await hog.exited).signal).toBe('SIGKILL')
        expect(await waitFor(() => events.some((e) => e.type === oomType), 10_000), `events seen: ${JSON.stringify(events)}`).toBe(true)
        expect(await waitFor(() => ooms.length > 0, 2000), "the 'oom' event").toBe(true)
      } finally {
        w.close()
      }
    })
  })

  it('a process within the limit is not killed', async () => {
    await withCgroup({ memory: { max: 64 * MiB } }, async (cg) => {
      const small = [BUSYBOX, 'sh', '-c', `x=$(${BUSYBOX} head -c 4m /dev/zero | ${BUSYBOX} tr '\\0' a); echo \${#x}`]
      const child = await startIn(cg, small, { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      expect(await child.exited).toEqual({ code: 0, signal: null })
      await waitFor(() => out.length > 0, 1000)
      expect(out.trim()).toBe(String(4 * MiB))
    })
  })
})

describe.runIf(has('pids'))('pids.max', () => {
  it('16 stops a loop that tries to start 50 `sleep 5 &`: forks fail, never more than 16 processes', async () => {
    await withCgroup({ pids: { max: 16 } }, async (cg) => {
      const loop = await startIn(
        cg,
        [BUSYBOX, 'sh', '-c', `i=0; while [ $i -lt 50 ]; do ${BUSYBOX} sleep 5 & i=$((i+1)); done; echo all-started; wait`],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let out = ''
      let err = ''
      loop.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      loop.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
      let maxSeen = 0
      let maxCurrent = 0
      let done = false
      void loop.exited.then(() => (done = true))
      const deadline = Date.now() + 10_000
      while (!done && Date.now() < deadline) {
        maxSeen = Math.max(maxSeen, (await cg.processes()).length)
        maxCurrent = Math.max(maxCurrent, (await cg.stats()).pids.current)
        await sleep(10)
      }
      const ex = await loop.exited
      // the shell gives up at the first fork that fails
      expect(out).not.toContain('all-started')
      expect(ex.code).not.toBe(0)
      expect(err).toMatch(/fork/i)
      const s = await cg.stats()
      maxSeen = Math.max(maxSeen, (await cg.processes()).length)
      maxCurrent = Math.max(maxCurrent, s.pids.current)
      expect(maxSeen).toBeLessThanOrEqual(16)
      expect(maxCurrent).toBeLessThanOrEqual(16)
      expect(s.pids.current).toBeLessThanOrEqual(16)
      expect(s.pids.current).toBeGreaterThanOrEqual(10) // the sleeps that did start are still there
      expect(s.pids.max).toBe(16)
    })
  })
})

describe.runIf(has('cpu'))('cpu quota', () => {
  it('20% (quota 20000 / period 100000) bounds a busy loop over about a second', async () => {
    await withCgroup({ cpu: { quota: 20_000, period: 100_000 } }, async (cg) => {
      await startIn(cg, ['/bin/sh', '-c', 'while :; do :; done'])
      await sleep(200) // let it start spinning
      const s0 = await cg.stats()
      const t0 = process.hrtime.bigint()
      await sleep(1000)
      const s1 = await cg.stats()
      const wallUsec = Number((process.hrtime.bigint() - t0) / 1000n)
      const used = s1.cpu.usageUsec - s0.cpu.usageUsec
      // the loop runs (it got some cpu) but far less than a full cpu: 20% plus a generous margin
      expect(used).toBeGreaterThan(0)
      expect(used / wallUsec).toBeLessThan(0.4)
      expect(s1.cpu.throttledPeriods).toBeGreaterThan(0)
      expect(s1.cpu.throttledUsec).toBeGreaterThan(0)
      expect(s1.cpu.periods).toBeGreaterThanOrEqual(s1.cpu.throttledPeriods)
    })
  })
})
