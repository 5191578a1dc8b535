/**
 * stats() has one shape in every mode, and its figures move with what the processes do:
 * memory.current grows when a process allocates, cpu usage grows with a busy loop, pids.current
 * counts the processes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { CgroupHost } from '../src/index.js'
import { BUSYBOX, host, MiB, cleanup, sleep, startIn, waitFor, withCgroup } from './helpers/util.js'

afterEach(cleanup)

const h: CgroupHost = await host()
const has = (c: string) => h.controllers.includes(c as never)

describe('stats()', () => {
  it('has the same shape in every mode', async () => {
    await withCgroup(has('memory') ? { memory: { max: 64 * MiB } } : undefined, async (cg) => {
      const s = await cg.stats()
      expect(typeof s.memory.current).toBe('number')
      expect(typeof s.memory.stat).toBe('object')
      if (has('memory')) {
        expect(s.memory.limit).toBe(64 * MiB)
        expect(Object.keys(s.memory.stat).length).toBeGreaterThan(0)
      }
      for (const k of ['usageUsec', 'userUsec', 'systemUsec', 'periods', 'throttledPeriods', 'throttledUsec'] as const) {
        expect(typeof s.cpu[k], `cpu.${k}`).toBe('number')
        expect(s.cpu[k]).toBeGreaterThanOrEqual(0)
      }
      expect(s.pids.current).toBe(0)
      expect(Array.isArray(s.io)).toBe(true)
      for (const v of Object.values(s.memory.stat)) expect(Number.isFinite(v)).toBe(true)
    })
  })

  it.runIf(has('memory'))('memory.current grows after a process allocates (and peak follows it)', async () => {
    await withCgroup(undefined, async (cg) => {
      const before = (await cg.stats()).memory.current
      // holds 24 MiB in a shell variable, says so, then waits (in a TCG guest filling it takes seconds);
      // the last command uses x, so the shell stays (ash execs a last external command in place)
      const child = await startIn(cg, [BUSYBOX, 'sh', '-c', `x=$(${BUSYBOX} head -c 24m /dev/zero | ${BUSYBOX} tr '\\0' a); echo ready; ${BUSYBOX} sleep 60; echo \${#x}`], {
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      let out = ''
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      expect(await waitFor(() => out.includes('ready'), 50_000, 50), 'the allocation finished').toBe(true)
      const s = await cg.stats()
      expect(s.memory.current, `memory.current ${s.memory.current} (before ${before})`).toBeGreaterThan(before + 16 * MiB)
      expect(s.memory.limit).toBe('max')
      if (s.memory.peak !== undefined) expect(s.memory.peak).toBeGreaterThanOrEqual(s.memory.current)
    })
  }, 60_000)

  it.runIf(has('cpu'))('cpu usage grows after a busy loop', async () => {
    await withCgroup(undefined, async (cg) => {
      const before = await cg.stats()
      const loop = await startIn(cg, ['/bin/sh', '-c', 'while :; do :; done'])
      await sleep(500)
      loop.kill('SIGKILL')
      await loop.exited
      const after = await cg.stats()
      expect(after.cpu.usageUsec - before.cpu.usageUsec).toBeGreaterThan(50_000)
      expect(after.cpu.userUsec + after.cpu.systemUsec).toBeGreaterThan(before.cpu.userUsec + before.cpu.systemUsec)
      expect(after.cpu.throttledPeriods).toBe(0) // no quota: never throttled
    })
  })

  it.runIf(has('cpu') && has('memory'))('usage() reports what stats() does for peak memory and cpu time, once the processes are gone', async () => {
    await withCgroup(undefined, async (cg) => {
      // 8 MiB held in a shell variable, then a busy loop (in a TCG guest filling it takes seconds)
      const loop = await startIn(cg, [BUSYBOX, 'sh', '-c', `x=$(${BUSYBOX} head -c 8m /dev/zero | ${BUSYBOX} tr '\\0' a); echo ready; while :; do :; done`], {
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      let out = ''
      loop.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
      expect(await waitFor(() => out.includes('ready'), 50_000, 50), 'the allocation finished').toBe(true)
      await sleep(200)
      loop.kill('SIGKILL')
      await loop.exited
      const [u, s] = [await cg.usage(), await cg.stats()]
      expect(u.cpu).toEqual({ usageUsec: s.cpu.usageUsec, userUsec: s.cpu.userUsec, systemUsec: s.cpu.systemUsec })
      expect(u.cpu.usageUsec).toBeGreaterThan(50_000)
      expect(u.memoryPeak).toBe(s.memory.peak)
      if (u.memoryPeak !== undefined) expect(u.memoryPeak).toBeGreaterThan(8 * MiB)
    })
  }, 60_000)

  it.runIf(has('pids'))('pids.current counts the processes; pids.max is the limit', async () => {
    await withCgroup({ pids: { max: 50 } }, async (cg) => {
      expect((await cg.stats()).pids).toEqual({ current: 0, max: 50 })
      await startIn(cg, ['sleep', '30'])
      await startIn(cg, ['sleep', '30'])
      await startIn(cg, ['sh', '-c', 'sleep 30 & wait'])
      expect(await waitFor(async () => (await cg.processes()).length === 4)).toBe(true)
      expect((await cg.stats()).pids).toEqual({ current: 4, max: 50 })
      await cg.kill()
      expect(await waitFor(async () => (await cg.stats()).pids.current === 0)).toBe(true)
    })
  })

  it('psi, where the kernel has it, has some averages and a total', async () => {
    await withCgroup(undefined, async (cg) => {
      const s = await cg.stats()
      if (s.psi === undefined) return
      for (const p of [s.psi.cpu, s.psi.memory, s.psi.io]) {
        if (!p) continue
        expect(typeof p.some.avg10).toBe('number')
        expect(typeof p.some.total).toBe('number')
      }
    })
  })
})
