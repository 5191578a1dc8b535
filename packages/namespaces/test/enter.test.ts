/**
 * enter(pid): run a process inside the namespaces of a running container.
 */
import path from 'node:path'
import { busyboxRootfs } from '@ctr/fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { namespaceId, namespaceIds } from '../src/index.js'
import { numericEntries, reap, runEnter, safeRm, start, startEnter, statusField, tempDir, type NsChild } from './helpers/util.js'

let dir: string
let root: string
let holder: NsChild | undefined

beforeAll(async () => {
  dir = tempDir()
  root = await busyboxRootfs(path.join(dir, 'rootfs'))
  holder = await start({
    argv: ['/bin/sleep', '1000'],
    namespaces: ['pid', 'mnt', 'uts', 'net'],
    rootfs: { path: root },
    hostname: 'held',
  })
})

afterAll(async () => {
  await reap(holder)
  await safeRm(dir)
})

describe('enter', () => {
  it("runs in the holder's uts, pid and mount namespaces", async () => {
    const r = await runEnter(holder!.pid, {
      argv: ['/bin/sh', '-c', "hostname; echo $$; ls /proc | tr '\\n' ' '; echo; tr '\\0' ' ' < /proc/1/cmdline"],
    })
    expect(r.code, r.stderr).toBe(0)
    const [hostname, inner, procs, pid1] = r.stdout.split('\n')
    expect(hostname).toBe('held')
    const innerPid = Number(inner)
    expect(Number.isInteger(innerPid)).toBe(true)
    expect(innerPid).not.toBe(1)
    expect(innerPid).not.toBe(r.pid) // a pid of the holder's namespace, not the host pid
    const procEntries = numericEntries(procs ?? '')
    expect(procEntries).toContain(1)
    expect(procEntries).toContain(innerPid)
    expect(procEntries.length).toBeLessThan(10) // the holder's /proc, not the host's
    expect(pid1).toBe('/bin/sleep 1000 ') // pid 1 is the holder's sleep
  })

  it("the entered process's namespace ids equal the holder's", async () => {
    const child = await startEnter(holder!.pid, { argv: ['/bin/sleep', '30'] })
    try {
      const mine = await namespaceIds('self')
      for (const t of ['pid', 'mnt', 'uts', 'net'] as const) {
        expect(await namespaceId(child.pid, t), t).toBe(await namespaceId(holder!.pid, t))
        expect(await namespaceId(child.pid, t), t).not.toBe(mine[t])
      }
      // namespaces the holder shares with us stay shared
      expect(await namespaceId(child.pid, 'ipc')).toBe(mine.ipc)
      expect(await namespaceId(child.pid, 'user')).toBe(mine.user)
      // a host pid and a pid inside the holder's namespace
      const nspid = statusField(child.pid, 'NSpid').split(/\s+/).map(Number)
      expect(nspid).toHaveLength(2)
      expect(nspid[0]).toBe(child.pid)
      expect(nspid[1]).toBeGreaterThan(1)
      // its root is the container's root
      const r = await runEnter(holder!.pid, { argv: ['/bin/readlink', '/proc/self/exe'] })
      expect(r.stdout).toBe('/bin/busybox\n')
    } finally {
      await reap(child)
    }
  })

  it('namespaces: [...] enters only those', async () => {
    const child = await startEnter(holder!.pid, { argv: ['/bin/sleep', '30'], namespaces: ['uts'] })
    try {
      expect(await namespaceId(child.pid, 'uts')).toBe(await namespaceId(holder!.pid, 'uts'))
      expect(await namespaceId(child.pid, 'net')).toBe(await namespaceId('self', 'net'))
      expect(await namespaceId(child.pid, 'mnt')).toBe(await namespaceId('self', 'mnt'))
      expect(await namespaceId(child.pid, 'pid')).toBe(await namespaceId('self', 'pid'))
    } finally {
      await reap(child)
    }
    const r = await runEnter(holder!.pid, { argv: ['/bin/hostname'], namespaces: ['uts'] })
    expect(r.stdout).toBe('held\n')
  })

  it('the entered process sees only the holder network (lo)', async () => {
    const r = await runEnter(holder!.pid, { argv: ['/bin/sh', '-c', 'ip -o link'], namespaces: ['net', 'mnt'] })
    expect(r.code, r.stderr).toBe(0)
    const names = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[1]?.trim())
    expect(names).toEqual(['lo'])
  })

  it('does not change the namespaces of the caller', async () => {
    const before = await namespaceIds('self')
    await runEnter(holder!.pid, { argv: ['/bin/true'] })
    expect(await namespaceIds('self')).toEqual(before)
  })
})
