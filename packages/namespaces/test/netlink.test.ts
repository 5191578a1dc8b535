/**
 * rtnetlink against the real kernel. Every test works inside network namespaces held by
 * processes this file spawns (`namespaces: ['net']`); the root network namespace is only
 * read (`ip -o link`/`ip -o addr` before and after, compared).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { close as closeFd, mount, umount2 } from '@ctr/native'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidOptionsError, Netlink, NetlinkError } from '../src/index.js'
import { fdCount, reap, runEnter, start, tempDir, type NsChild } from './helpers/util.js'

const MS_BIND = 4096
const MNT_DETACH = 2

const rootView = () => ({
  link: execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).replace(/\s+\\\s+link\/.*$/gm, ''),
  addr: execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).replace(/valid_lft.*$/gm, ''),
})
let rootBefore: ReturnType<typeof rootView>

beforeAll(() => {
  rootBefore = rootView()
})

afterAll(() => {
  expect(rootView(), 'the root network namespace is unchanged').toEqual(rootBefore)
})

/** A process holding a fresh network namespace. */
const holder = () => start({ argv: ['/bin/sleep', '600'], namespaces: ['net'] })

/** Runs `fn` with `n` fresh network namespaces and a Netlink opened in the first; cleans up. */
async function withNetns<T>(n: number, fn: (nl: Netlink, ns: NsChild[]) => Promise<T>): Promise<T> {
  const ns: NsChild[] = []
  let nl: Netlink | undefined
  try {
    for (let i = 0; i < n; i++) ns.push(await holder())
    nl = await Netlink.open({ netns: ns[0]!.pid })
    return await fn(nl, ns)
  } finally {
    nl?.close()
    for (const c of ns) await reap(c)
  }
}

async function ping(from: NsChild, ip: string, wait = 3): Promise<{ code: number | null; out: string }> {
  const r = await runEnter(from.pid, { argv: ['/bin/busybox', 'ping', '-c', '1', '-W', String(wait), ip], namespaces: ['net'] })
  return { code: r.code, out: r.stdout + r.stderr }
}

describe('Netlink links', () => {
  it('lists the loopback of a fresh netns, down', async () => {
    await withNetns(1, async (nl) => {
      const links = await nl.links()
      expect(links).toEqual([{ index: 1, name: 'lo', mtu: 65536, up: expect.any(Boolean) }])
      expect(await nl.link('lo')).toEqual(links[0])
      expect(await nl.link('nope0')).toBeUndefined()
    })
  })

  it('creates a veth pair, sets up, MTU, rename and deletes', async () => {
    await withNetns(1, async (nl) => {
      await nl.createVeth('va0', 'vb0', { mtu: 1400 })
      const a = await nl.link('va0')
      expect(a).toMatchObject({ name: 'va0', mtu: 1400, up: false, kind: 'veth' })
      expect(a!.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
      expect(await nl.link('vb0')).toMatchObject({ mtu: 1400, kind: 'veth' })

      await nl.setMtu('va0', 1300)
      expect((await nl.link('va0'))!.mtu).toBe(1300)
      await nl.rename('va0', 'renamed0')
      expect(await nl.link('va0')).toBeUndefined()
      expect((await nl.link('renamed0'))!.index).toBe(a!.index)

      await nl.setUp('renamed0')
      expect((await nl.link('renamed0'))!.up).toBe(true)
      await nl.setUp('renamed0', false)
      expect((await nl.link('renamed0'))!.up).toBe(false)

      await nl.deleteLink('renamed0')
      expect((await nl.links()).map((l) => l.name)).toEqual(['lo']) // the peer went with it
    })
  })

  it('moves a link into another netns by pid and by path, creates a peer in one directly', async () => {
    await withNetns(3, async (nl, [, b, c]) => {
      const dir = tempDir()
      const nsFile = path.join(dir, 'netns')
      fs.writeFileSync(nsFile, '')
      mount(`/proc/${c!.pid}/ns/net`, nsFile, null, MS_BIND)
      const inB = await Netlink.open({ netns: b!.pid })
      const inC = await Netlink.open({ netns: nsFile })
      try {
        await nl.createVeth('h0', 'p0')
        await nl.moveToNetns('p0', b!.pid)
        expect(await nl.link('p0')).toBeUndefined()
        expect(await inB.link('p0')).toMatchObject({ name: 'p0', kind: 'veth', up: false })

        await nl.createVeth('h1', 'p1')
        await nl.moveToNetns('p1', nsFile)
        expect(await inC.link('p1')).toMatchObject({ kind: 'veth' })

        await nl.createVeth('h2', 'p2', { peerNetns: `/proc/${b!.pid}/ns/net`, mtu: 1280 })
        expect(await inB.link('p2')).toMatchObject({ mtu: 1280 })
        await nl.createVeth('h3', 'p3', { peerNetns: c!.pid })
        expect(await inC.link('p3')).toMatchObject({ kind: 'veth' })
        expect((await nl.links()).map((l) => l.name).sort()).toEqual(['h0', 'h1', 'h2', 'h3', 'lo'])
      } finally {
        inB.close()
        inC.close()
        umount2(nsFile, MNT_DETACH)
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})

describe('Netlink addresses, routes and traffic', () => {
  it('veth across two namespaces: addresses, IPv4 and IPv6 ping', async () => {
    await withNetns(2, async (nl, [a, b]) => {
      const inB = await Netlink.open({ netns: b!.pid })
      try {
        await nl.createVeth('veth0', 'eth0', { peerNetns: b!.pid })
        await nl.addAddress('veth0', '10.99.0.1/24')
        await nl.addAddress('veth0', 'fd00:99::1/64', { nodad: true })
        await nl.setUp('veth0')
        await inB.addAddress('eth0', '10.99.0.2/24')
        await inB.addAddress('eth0', 'FD00:99:0::2/64', { nodad: true })
        await inB.setUp('eth0')

        expect(await nl.addresses('veth0')).toEqual(
          expect.arrayContaining([
            { link: 'veth0', cidr: '10.99.0.1/24', family: 4 },
            { link: 'veth0', cidr: 'fd00:99::1/64', family: 6 },
          ]),
        )
        const bAddrs = await inB.addresses()
        expect(bAddrs).toContainEqual({ link: 'eth0', cidr: '10.99.0.2/24', family: 4 })
        expect(bAddrs).toContainEqual({ link: 'eth0', cidr: 'fd00:99::2/64', family: 6 })

        const p4 = await ping(a!, '10.99.0.2')
        expect(p4.code, p4.out).toBe(0)
        const p6 = await ping(b!, 'fd00:99::1')
        expect(p6.code, p6.out).toBe(0)

        await inB.deleteAddress('eth0', '10.99.0.2/24')
        expect(await inB.addresses('eth0')).not.toContainEqual({ link: 'eth0', cidr: '10.99.0.2/24', family: 4 })
        expect((await ping(a!, '10.99.0.2', 1)).code).not.toBe(0)
      } finally {
        inB.close()
      }
    })
  })

  it('routes: default via a gateway, a network route, listed and deleted', async () => {
    await withNetns(2, async (nl, [a, b]) => {
      const inB = await Netlink.open({ netns: b!.pid })
      try {
        await nl.createVeth('veth0', 'eth0', { peerNetns: b!.pid })
        await nl.addAddress('veth0', '10.98.0.1/24')
        await nl.addAddress('veth0', '10.97.0.1/32') // reachable from b only through a route
        await nl.setUp('veth0')
        await inB.addAddress('eth0', '10.98.0.2/24')
        await inB.addAddress('eth0', 'fd00:98::2/64', { nodad: true })
        await inB.setUp('eth0')

        expect((await ping(b!, '10.97.0.1', 1)).code).not.toBe(0)
        await inB.addRoute({ dst: 'default', gateway: '10.98.0.1' })
        await inB.addRoute({ dst: '10.50.7.9/16', gateway: '10.98.0.1', dev: 'eth0' }) // host bits cleared
        await inB.addRoute({ dst: 'default', gateway: 'fd00:98::1', dev: 'eth0' })
        const p = await ping(b!, '10.97.0.1')
        expect(p.code, p.out).toBe(0)

        const r4 = await inB.routes(4)
        expect(r4).toContainEqual({ dst: 'default', gateway: '10.98.0.1', dev: 'eth0', family: 4 })
        expect(r4).toContainEqual({ dst: '10.50.0.0/16', gateway: '10.98.0.1', dev: 'eth0', family: 4 })
        expect(r4).toContainEqual({ dst: '10.98.0.0/24', dev: 'eth0', family: 4 }) // the kernel's prefix route
        const r6 = await inB.routes(6)
        expect(r6).toContainEqual({ dst: 'default', gateway: 'fd00:98::1', dev: 'eth0', family: 6 })
        expect(r6).toContainEqual({ dst: 'fd00:98::/64', dev: 'eth0', family: 6 })
        expect(await inB.routes()).toEqual(expect.arrayContaining([...r4, ...r6]))

        await expect(inB.addRoute({ dst: 'default', gateway: '10.98.0.1' })).rejects.toMatchObject({
          errnoCode: 'EEXIST',
          operation: 'add route default via 10.98.0.1',
        })
        await inB.deleteRoute({ dst: '10.50.0.0/16', gateway: '10.98.0.1' })
        await inB.deleteRoute({ dst: 'default', dev: 'eth0' })
        await inB.deleteRoute({ dst: 'default', family: 6, dev: 'eth0' })
        expect((await inB.routes()).filter((r) => r.dst === 'default' || r.dst === '10.50.0.0/16')).toEqual([])
        await expect(inB.deleteRoute({ dst: '10.50.0.0/16', dev: 'eth0' })).rejects.toMatchObject({ errnoCode: 'ESRCH' })
        expect((await ping(b!, '10.97.0.1', 1)).code).not.toBe(0)
        void a
      } finally {
        inB.close()
      }
    })
  })

  it('a bridge with two veth ports forwards between two namespaces', async () => {
    await withNetns(3, async (nl, [, b, c]) => {
      const inB = await Netlink.open({ netns: b!.pid })
      const inC = await Netlink.open({ netns: c!.pid })
      try {
        await nl.createBridge('br0', { mtu: 1500 })
        await nl.createVeth('vb', 'eth0', { peerNetns: b!.pid })
        await nl.createVeth('vc', 'eth0', { peerNetns: c!.pid })
        await nl.setMaster('vb', 'br0')
        await nl.setMaster('vc', 'br0')
        for (const l of ['br0', 'vb', 'vc']) await nl.setUp(l)
        await inB.addAddress('eth0', '10.96.0.2/24')
        await inC.addAddress('eth0', '10.96.0.3/24')
        await inB.setUp('eth0')
        await inC.setUp('eth0')

        const links = await nl.links()
        expect(links.find((l) => l.name === 'br0')).toMatchObject({ kind: 'bridge', up: true })
        expect(links.find((l) => l.name === 'vb')).toMatchObject({ master: 'br0', up: true })
        expect(await nl.link('vc')).toMatchObject({ master: 'br0' })

        const p = await ping(b!, '10.96.0.3')
        expect(p.code, p.out).toBe(0)

        await nl.setMaster('vc', null)
        expect((await nl.link('vc'))!.master).toBeUndefined()
        expect((await ping(b!, '10.96.0.3', 1)).code).not.toBe(0)
      } finally {
        inB.close()
        inC.close()
      }
    })
  })
})

describe('Netlink errors', () => {
  it('kernel errors name the operation and the errno', async () => {
    await withNetns(1, async (nl) => {
      await nl.createVeth('x0', 'y0')
      const dup = await nl.createVeth('x0', 'y1').catch((e: unknown) => e)
      expect(dup).toBeInstanceOf(NetlinkError)
      expect(dup).toMatchObject({ code: 'ERR_NETLINK', errno: 17, errnoCode: 'EEXIST', operation: 'create veth x0 peer y1' })

      await nl.addAddress('x0', '10.0.0.1/24')
      const again = (await nl.addAddress('x0', '10.0.0.1/24').catch((e: unknown) => e)) as NetlinkError
      // crun style, plus the kernel's extended-ack text when it sent one
      expect(again.message).toMatch(/^add address 10\.0\.0\.1\/24 to x0: EEXIST \(File exists\)(: .+)?$/)

      for (const [p, op] of [
        [nl.setUp('missing0'), 'set missing0 up'],
        [nl.setMtu('missing0', 1400), 'set mtu of missing0 to 1400'],
        [nl.deleteLink('missing0'), 'delete link missing0'],
        [nl.addAddress('missing0', '10.0.0.2/24'), 'add address 10.0.0.2/24 to missing0'],
        [nl.setMaster('x0', 'nobridge'), 'attach x0 to nobridge'],
        [nl.addresses('missing0'), 'list addresses of missing0'],
      ] as const) {
        await expect(p).rejects.toMatchObject({ name: 'NetlinkError', errnoCode: 'ENODEV', operation: op })
      }
      await expect(nl.deleteAddress('x0', '10.0.0.9/24')).rejects.toMatchObject({ errnoCode: 'EADDRNOTAVAIL' })
      await expect(nl.setMtu('x0', 65535 + 0)).resolves.toBeUndefined()
      await expect(Netlink.open({ netns: '/nonexistent/netns' })).rejects.toMatchObject({ errnoCode: 'ENOENT' })
      await expect(Netlink.open({ netns: '/proc/self/ns/mnt' })).rejects.toMatchObject({ errnoCode: 'EINVAL' })
      await expect(nl.moveToNetns('x0', 999_999_999)).rejects.toMatchObject({ errnoCode: 'ESRCH' })
    })
  })

  it('rejects invalid input before sending anything', async () => {
    await withNetns(1, async (nl) => {
      const cases: (() => Promise<unknown>)[] = [
        () => nl.createVeth('a'.repeat(16), 'b'),
        () => nl.createVeth('a/b', 'b'),
        () => nl.createVeth('ok0', ''),
        () => nl.createVeth('ok0', 'ok1', { mtu: 10 }),
        () => nl.createVeth('ok0', 'ok1', { peerNetns: 'relative/path' }),
        () => nl.createBridge('br 0'),
        () => nl.addAddress('lo', '10.0.0.300/24'),
        () => nl.addAddress('lo', '10.0.0.1/33'),
        () => nl.addAddress('lo', 'fd00::1/129'),
        () => nl.addRoute({ dst: 'nowhere', gateway: '10.0.0.1' }),
        () => nl.addRoute({ dst: 'default' }),
        () => nl.addRoute({ dst: '10.0.0.0/8', gateway: 'fd00::1' }),
        () => nl.addRoute({ dst: 'default', gateway: '10.0.0.1/24' }),
        () => nl.setMtu('lo', 1.5),
        () => nl.moveToNetns('lo', -1),
        () => Netlink.open({ netns: 0 }),
      ]
      const addrs = await nl.addresses()
      for (const c of cases) await expect(c()).rejects.toBeInstanceOf(InvalidOptionsError)
      expect((await nl.links()).map((l) => l.name)).toEqual(['lo'])
      expect(await nl.addresses()).toEqual(addrs)
    })
  })

  it('closing is idempotent; a closed socket rejects; requests queue on one socket', async () => {
    await withNetns(1, async (nl, [a]) => {
      const other = await Netlink.open({ netns: `/proc/${a!.pid}/ns/net` })
      const all = await Promise.all([other.links(), other.addresses(), other.routes(), other.link('lo')])
      expect(all[0]).toHaveLength(1)
      other.close()
      other.close()
      await expect(other.links()).rejects.toMatchObject({ errnoCode: 'EBADF' })
      // closing with requests in flight closes after them
      const third = await Netlink.open({ netns: a!.pid })
      const pending = third.links()
      third.close()
      expect(await pending).toHaveLength(1)
      void nl
    })
  })
})

describe('Netlink batches and namespaces without a process', () => {
  it('openNewNetns: a namespace held by fds; one batch wires a veth to another netns, lo, address and route', async () => {
    await withNetns(1, async (nl, [a]) => {
      await nl.createBridge('br0')
      await nl.addAddress('br0', '10.66.0.1/24')
      await nl.setUp('br0')
      const bridge = (await nl.link('br0'))!.index
      const fresh = await Netlink.openNewNetns()
      try {
        expect(fresh.path).toBe(`/proc/self/fd/${fresh.netnsFd}`)
        expect(await fresh.netlink.links()).toEqual([{ index: 1, name: 'lo', mtu: 65536, up: false }])
        const b = fresh.netlink.batch()
          .createVeth({ name: 'eth0', index: 2, mac: '02:42:0a:42:00:02', up: true, peer: { name: 'vhost0', netns: a!.pid } })
          .setLink({ index: 1 }, { up: true })
          .addAddress({ index: 2 }, '10.66.0.2/24')
          .addRoute({ dst: 'default', gateway: '10.66.0.1', oif: 2 })
        expect(b.size).toBe(4)
        await b.send()
        await expect(b.send()).rejects.toThrow(/sent already/)
        await nl.batch().setLink('vhost0', { master: bridge, up: true }).send()
        expect(await nl.link('vhost0')).toMatchObject({ up: true, master: 'br0', kind: 'veth' })
        expect((await fresh.netlink.links()).map((l) => [l.index, l.name, l.up])).toEqual([[1, 'lo', true], [2, 'eth0', true]])
        expect((await fresh.netlink.link('eth0'))!.mac).toBe('02:42:0a:42:00:02')
        expect(await fresh.netlink.addresses('eth0')).toContainEqual({ link: 'eth0', cidr: '10.66.0.2/24', family: 4 })
        expect(await fresh.netlink.routes(4)).toContainEqual({ dst: 'default', gateway: '10.66.0.1', dev: 'eth0', family: 4 })
        // A process joins through /proc/self/fd/N and reaches the bridge's address.
        const inside = await start({ argv: ['/bin/busybox', 'ping', '-c', '1', '-W', '3', '10.66.0.1'], join: { net: fresh.path }, stdio: ['ignore', 'ignore', 'ignore'] })
        expect((await inside.exited).code).toBe(0)
      } finally {
        fresh.netlink.close()
        closeFd(fresh.netnsFd)
      }
      // Nothing holds the namespace any more: it goes, and the veth pair with it.
      for (let i = 0; i < 100 && (await nl.link('vhost0')); i++) await new Promise((r) => setTimeout(r, 20))
      expect(await nl.link('vhost0')).toBeUndefined()
      await nl.deleteLink('br0')
    })
  })

  it('a batch runs every request and rejects with the first failure, named', async () => {
    await withNetns(1, async (nl) => {
      const b = nl.batch()
        .createVeth({ name: 'va', peer: { name: 'vb' } })
        .setLink('nope0', { up: true })
        .setLink('va', { up: true, mtu: 1400 })
        .deleteLink('vb')
      await expect(b.send()).rejects.toMatchObject({ errnoCode: 'ENODEV', operation: 'set nope0 up' })
      // the requests after the failed one ran: va is up with its MTU, vb (and so va) deleted
      expect((await nl.links()).map((l) => l.name)).toEqual(['lo'])
      expect(() => nl.batch().addAddress({ index: 0 }, '10.0.0.1/24')).toThrow(InvalidOptionsError)
      expect(() => nl.batch().setLink('a/b', { up: true })).toThrow(InvalidOptionsError)
      expect(() => nl.batch().createVeth({ name: 'x', mac: '02:42', peer: { name: 'y' } })).toThrow(InvalidOptionsError)
      expect(() => nl.batch().createVeth({ name: 'x', peer: { name: 'y', netns: 'relative' } })).toThrow(InvalidOptionsError)
      await nl.batch().send() // empty: nothing sent
    })
  })

  it('sendSync and openNewNetnsSync: the same on the calling thread', async () => {
    const fresh = Netlink.openNewNetnsSync()
    const other = Netlink.openNewNetnsSync()
    try {
      fresh.netlink.batch().createVeth({ name: 'eth0', index: 2, up: true, peer: { name: 'eth1', netns: other.path } }).setLink({ index: 1 }, { up: true }).addAddress({ index: 2 }, 'fd00::2/64', { nodad: true }).sendSync()
      expect(await fresh.netlink.addresses('eth0')).toContainEqual({ link: 'eth0', cidr: 'fd00::2/64', family: 6 })
      expect(() => fresh.netlink.batch().setLink('nope0', { up: true }).sendSync()).toThrow(/set nope0 up: ENODEV/)
      // beside a request queued on the socket (one a worker thread waits for refuses: EBUSY)
      const pending = fresh.netlink.links()
      fresh.netlink.batch().setLink('eth0', { mtu: 1400 }).sendSync()
      expect((await pending).map((l) => l.name)).toEqual(['lo', 'eth0'])
      other.netlink.batch().setLink('eth1', { up: true }).sendSync()
      expect((await fresh.netlink.link('eth0'))!.mtu).toBe(1400)
      expect((await other.netlink.link('eth1'))!.up).toBe(true)
    } finally {
      for (const n of [fresh, other]) {
        n.netlink.close()
        closeFd(n.netnsFd)
      }
    }
  })
})

describe('Netlink hygiene', () => {
  it('leaves no fd open', async () => {
    await withNetns(1, async (nl, [a]) => {
      const before = fdCount()
      for (let i = 0; i < 20; i++) {
        const x = await Netlink.open({ netns: a!.pid })
        await x.links()
        await x.setUp('nope').catch(() => undefined)
        await x.createVeth('v', 'w', { peerNetns: '/proc/1/ns/nonexistent' }).catch(() => undefined)
        await x.batch().createVeth({ name: 'v', peer: { name: 'w', netns: `/proc/${a!.pid}/ns/net` } }).deleteLink('v').send()
        x.close()
        const y = await Netlink.openNewNetns()
        y.netlink.close()
        closeFd(y.netnsFd)
      }
      expect(fdCount()).toBe(before)
      void nl
    })
  })
})
