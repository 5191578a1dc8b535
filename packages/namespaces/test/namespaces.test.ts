/**
 * New and joined namespaces, as the kernel reports them (/proc/<pid>/ns/*), and the
 * visible effect of each: pid 1, hostname, uid maps, a network namespace with only lo.
 */
import fs from 'node:fs'
import os from 'node:os'
import { describe, expect, it } from 'vitest'
import { namespaceId, namespaceIds, readText } from '../src/index.js'
import { reap, run, start, statusField, withChild, type NsChild } from './helpers/util.js'

type NsType = 'pid' | 'mnt' | 'uts' | 'ipc' | 'net' | 'user' | 'cgroup' | 'time'

const HAS_TIME = fs.existsSync('/proc/self/ns/time')
const TYPES: NsType[] = ['pid', 'mnt', 'uts', 'ipc', 'net', 'user', 'cgroup', ...(HAS_TIME ? (['time'] as const) : [])]

const ino = (pid: number | 'self', t: NsType) => fs.statSync(`/proc/${pid}/ns/${t}`).ino

describe('namespaceId / namespaceIds', () => {
  it('namespaceId is the inode of /proc/<pid>/ns/<type>', async () => {
    for (const t of TYPES) {
      expect(await namespaceId('self', t)).toBe(ino('self', t))
      expect(await namespaceId(process.pid, t)).toBe(ino('self', t))
    }
  })

  it('namespaceIds lists every type of this kernel with its inode', async () => {
    const ids = await namespaceIds('self')
    for (const t of TYPES) expect(ids[t], t).toBe(ino('self', t))
  })

  it('namespaceId rejects for a process that does not exist', async () => {
    await expect(namespaceId(2 ** 22 + 12345, 'net')).rejects.toThrow()
  })
})

describe('new namespaces', () => {
  for (const t of TYPES) {
    it(`creates a really new ${t} namespace, and only that one`, async () => {
      await withChild({ argv: ['/bin/sleep', '5'], namespaces: [t] }, async (child) => {
        const mine = await namespaceId('self', t)
        const theirs = await namespaceId(child.pid, t)
        expect(theirs).not.toBe(mine)
        expect(theirs).toBe(ino(child.pid, t))
        for (const other of TYPES.filter((o) => o !== t)) {
          expect(await namespaceId(child.pid, other), `${other} should be shared`).toBe(await namespaceId('self', other))
        }
      })
    })
  }

  it('creates several namespaces at once', async () => {
    const want: NsType[] = ['pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup']
    await withChild({ argv: ['/bin/sleep', '5'], namespaces: want }, async (child) => {
      const mine = await namespaceIds('self')
      const theirs = await namespaceIds(child.pid)
      for (const t of want) expect(theirs[t], t).not.toBe(mine[t])
      expect(theirs.user).toBe(mine.user)
    })
  })
})

describe('joined namespaces', () => {
  it('joins the net and uts namespaces of a running process by pid', async () => {
    let holder: NsChild | undefined
    let joiner: NsChild | undefined
    try {
      holder = await start({ argv: ['/bin/sleep', '10'], namespaces: ['net', 'uts'], hostname: 'holder-host' })
      joiner = await start({ argv: ['/bin/sleep', '10'], join: { net: holder.pid, uts: holder.pid } })
      for (const t of ['net', 'uts'] as const) {
        expect(await namespaceId(joiner.pid, t)).toBe(await namespaceId(holder.pid, t))
        expect(await namespaceId(joiner.pid, t)).not.toBe(await namespaceId('self', t))
      }
      // what was not joined stays ours
      expect(await namespaceId(joiner.pid, 'ipc')).toBe(await namespaceId('self', 'ipc'))
      const r = await run({ argv: ['/bin/hostname'], join: { uts: holder.pid } })
      expect(r.stdout.trim()).toBe('holder-host')
    } finally {
      await reap(joiner)
      await reap(holder)
    }
  })

  it('joins namespaces by /proc/<pid>/ns/<type> path', async () => {
    let holder: NsChild | undefined
    let joiner: NsChild | undefined
    try {
      holder = await start({ argv: ['/bin/sleep', '10'], namespaces: ['net', 'uts'], hostname: 'by-path' })
      joiner = await start({
        argv: ['/bin/sleep', '10'],
        join: { net: `/proc/${holder.pid}/ns/net`, uts: `/proc/${holder.pid}/ns/uts` },
      })
      expect(await namespaceId(joiner.pid, 'net')).toBe(await namespaceId(holder.pid, 'net'))
      expect(await namespaceId(joiner.pid, 'uts')).toBe(await namespaceId(holder.pid, 'uts'))
      const r = await run({ argv: ['/bin/hostname'], join: { uts: `/proc/${holder.pid}/ns/uts` } })
      expect(r.stdout.trim()).toBe('by-path')
    } finally {
      await reap(joiner)
      await reap(holder)
    }
  })

  it('joins a pid namespace: the child is in it and gets a pid of that namespace', async () => {
    let holder: NsChild | undefined
    try {
      holder = await start({ argv: ['/bin/sleep', '10'], namespaces: ['pid'] })
      const joiner = await start({
        argv: ['/bin/sh', '-c', 'echo $$; exec sleep 5 >/dev/null'],
        join: { pid: holder.pid },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      try {
        expect(await namespaceId(joiner.pid, 'pid')).toBe(await namespaceId(holder.pid, 'pid'))
        const inner = Number((await readText(joiner.stdout)).trim())
        expect(inner).toBeGreaterThan(1)
        expect(inner).not.toBe(joiner.pid)
        expect(statusField(joiner.pid, 'NSpid').split(/\s+/).map(Number)).toEqual([joiner.pid, inner])
      } finally {
        await reap(joiner)
      }
    } finally {
      await reap(holder)
    }
  })
})

describe('pid namespace', () => {
  it("the child is pid 1 inside: sh -c 'echo $$' prints 1", async () => {
    const r = await run({ argv: ['/bin/sh', '-c', 'echo $$'], namespaces: ['pid'] })
    expect(r).toMatchObject({ code: 0, signal: null })
    expect(r.stdout.trim()).toBe('1')
  })

  it('the host pid maps to 1 in NSpid', async () => {
    await withChild({ argv: ['/bin/sleep', '5'], namespaces: ['pid'] }, async (child) => {
      expect(child.pid).toBeGreaterThan(1)
      expect(statusField(child.pid, 'NSpid').split(/\s+/).map(Number)).toEqual([child.pid, 1])
    })
  })
})

describe('uts namespace', () => {
  it('sets the hostname inside without touching the host', async () => {
    const hostBefore = os.hostname()
    const kernelBefore = fs.readFileSync('/proc/sys/kernel/hostname', 'utf8')
    const r = await run({ argv: ['/bin/hostname'], namespaces: ['uts'], hostname: 'box' })
    expect(r).toMatchObject({ code: 0, stdout: 'box\n' })
    expect(os.hostname()).toBe(hostBefore)
    expect(fs.readFileSync('/proc/sys/kernel/hostname', 'utf8')).toBe(kernelBefore)
    expect(hostBefore).not.toBe('box')
  })

  it('sets the NIS domain name inside', async () => {
    const before = fs.readFileSync('/proc/sys/kernel/domainname', 'utf8')
    const r = await run({
      argv: ['/bin/cat', '/proc/sys/kernel/domainname'],
      namespaces: ['uts'],
      domainname: 'example.test',
    })
    expect(r.stdout).toBe('example.test\n')
    expect(fs.readFileSync('/proc/sys/kernel/domainname', 'utf8')).toBe(before)
  })
})

describe('user namespace', () => {
  const map = [{ containerId: 0, hostId: 100000, size: 65536 }]

  it('uid 0 inside is the mapped host uid outside', async () => {
    const r = await run({
      argv: ['/bin/busybox', 'sh', '-c', 'id -u; id -g'],
      namespaces: ['user'],
      uidMap: map,
      gidMap: map,
    })
    expect(r).toMatchObject({ code: 0, stderr: '' })
    expect(r.stdout).toBe('0\n0\n')

    await withChild({ argv: ['/bin/sleep', '5'], namespaces: ['user'], uidMap: map, gidMap: map }, async (child) => {
      expect(statusField(child.pid, 'Uid').split(/\s+/)).toEqual(['100000', '100000', '100000', '100000'])
      expect(statusField(child.pid, 'Gid').split(/\s+/)).toEqual(['100000', '100000', '100000', '100000'])
      const uidMap = fs.readFileSync(`/proc/${child.pid}/uid_map`, 'utf8').trim().split(/\s+/)
      const gidMap = fs.readFileSync(`/proc/${child.pid}/gid_map`, 'utf8').trim().split(/\s+/)
      expect(uidMap).toEqual(['0', '100000', '65536'])
      expect(gidMap).toEqual(['0', '100000', '65536'])
    })
  })

  it('by default maps 0 inside to the caller euid, size 1', async () => {
    await withChild({ argv: ['/bin/sleep', '5'], namespaces: ['user'] }, async (child) => {
      const uidMap = fs.readFileSync(`/proc/${child.pid}/uid_map`, 'utf8').trim().split(/\s+/)
      expect(uidMap).toEqual(['0', String(process.geteuid!()), '1'])
    })
  })

  it("setgroups: 'deny' is written to /proc/<pid>/setgroups", async () => {
    await withChild(
      { argv: ['/bin/sleep', '5'], namespaces: ['user'], uidMap: map, gidMap: map, setgroups: 'deny' },
      async (child) => {
        expect(fs.readFileSync(`/proc/${child.pid}/setgroups`, 'utf8').trim()).toBe('deny')
      },
    )
  })
})

describe('net namespace', () => {
  it('a new network namespace has only lo (ip link)', async () => {
    const r = await run({ argv: ['/bin/busybox', 'ip', '-o', 'link'], namespaces: ['net'] })
    expect(r).toMatchObject({ code: 0 })
    const names = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(':')[1]?.trim())
    expect(names).toEqual(['lo'])
    // sanity: the host has more than lo, or this test would prove nothing
    expect(fs.readdirSync('/sys/class/net').length).toBeGreaterThan(1)
  })
})

describe('network namespace loopback', () => {
  // `ip` asks netlink in its own network namespace (sysfs would show the mounter's).
  it('a new network namespace has lo up, unless loopback is false', async () => {
    const up = await run({ argv: ['/usr/sbin/ip', '-o', 'link', 'show', 'lo'], namespaces: ['net'] })
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toMatch(/<LOOPBACK,UP,LOWER_UP>/)
    const down = await run({ argv: ['/usr/sbin/ip', '-o', 'link', 'show', 'lo'], namespaces: ['net'], loopback: false })
    expect(down.stdout).toMatch(/<LOOPBACK>/)
  })
})
