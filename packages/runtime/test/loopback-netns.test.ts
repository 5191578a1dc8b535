/**
 * The spare network namespace for starts on network `none`: made only while starts come one
 * after another, with `lo` up, handed out once, closed when unused for a while or when asked.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { dropLoopbackSpareAsync, noteLoopbackStart, SPARE_IDLE_MS, takeLoopbackNetns } from '../src/network/loopback-netns.js'

const fds = () => fs.readdirSync('/proc/self/fd').length

afterEach(async () => {
  await dropLoopbackSpareAsync()
})

async function waitForSpare(): Promise<ReturnType<typeof takeLoopbackNetns>> {
  for (let i = 0; i < 200; i++) {
    const s = takeLoopbackNetns()
    if (s) return s
    await sleep(5)
  }
  return undefined
}

describe('spare loopback network namespaces', () => {
  it('none after a single start; after a second one soon after, one with only lo, up, handed out once', async () => {
    await sleep(SPARE_IDLE_MS + 50) // no recent start from another test
    noteLoopbackStart()
    await sleep(50)
    expect(takeLoopbackNetns()).toBeUndefined()
    noteLoopbackStart()
    const spare = await waitForSpare()
    expect(spare).toBeDefined()
    try {
      expect(takeLoopbackNetns()).toBeUndefined()
      const ns = fs.readlinkSync(spare!.path)
      expect(ns).toMatch(/^net:\[\d+\]$/)
      expect(ns).not.toBe(fs.readlinkSync('/proc/self/ns/net'))
      // What a process joining it sees: lo, and lo is up.
      const links = execFileSync('nsenter', [`--net=${spare!.path.replace('/proc/self/', `/proc/${process.pid}/`)}`, 'ip', '-o', 'link'], { encoding: 'utf8' })
      expect(links.trim().split('\n')).toHaveLength(1)
      expect(links).toMatch(/^1: lo: <LOOPBACK,UP,LOWER_UP>/)
    } finally {
      spare!.release()
    }
  })

  it('a spare nobody takes is closed after the idle time, and release closes a taken one (once)', async () => {
    const base = fds()
    const until = async (n: number) => {
      for (let i = 0; i < 400 && fds() !== n; i++) await sleep(5)
      return fds()
    }
    noteLoopbackStart()
    noteLoopbackStart()
    expect(await until(base + 1)).toBe(base + 1) // the spare's namespace fd
    const spare = takeLoopbackNetns()
    expect(spare).toBeDefined()
    spare!.release()
    spare!.release()
    expect(fds()).toBe(base)
    noteLoopbackStart() // starts still come one after another: another spare
    expect(await until(base + 1)).toBe(base + 1)
    await sleep(SPARE_IDLE_MS + 200)
    expect(fds()).toBe(base)
    expect(takeLoopbackNetns()).toBeUndefined()
  })
})
