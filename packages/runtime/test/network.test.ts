/**
 * Bridge networking end to end, inside a netns that plays the host (never the machine's own).
 */
import fsSync, { promises as fs } from 'node:fs'
import path from 'node:path'
import { execFile, spawn as spawnChild, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { spawn } from '@ctr/namespaces'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Network, Runtime, run } from '../src/index.js'
import { makeRuntimeEnv, type RuntimeEnv } from './helpers/runtime-env.js'
import { makeNetHost, type NetHost } from './helpers/net-host.js'

const execFileP = promisify(execFile)

let env: RuntimeEnv
let host: NetHost
let rt: Runtime
let clean: Awaited<ReturnType<NetHost['snapshot']>>

beforeAll(async () => {
  env = await makeRuntimeEnv()
  host = await makeNetHost()
  clean = await host.snapshot()
  // A second runtime over the same store and state, whose "host" is the test netns.
  rt = await Runtime.open({ root: `${env.dir}/store`, stateRoot: `${env.dir}/run`, cgroupParent: env.cgroupParent, fsync: false, hostNetns: host.pid })
})

afterAll(async () => {
  for (const n of await Network.list({ runtime: rt }).catch(() => [])) await n.remove().catch(() => {})
  await host?.dispose()
  await env?.dispose()
})

// run() resolves once the exit is known and removes the container in the background: these
// tests look at what is left right after, so they wait for the removal (`docker run --rm`).

/** A UDP server that answers `pong:<datagram>` on 5353, and a client that asks it once. */
const UDP_ECHO = "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('pong:'+m,r.port,r.address));s.bind(5353)"
const UDP_ASK = "const s=require('dgram').createSocket('udp4');s.on('message',(m)=>{console.log(String(m));process.exit(0)});" +
  "s.send('ping',Number(process.argv[1]),'127.0.0.1');setTimeout(()=>process.exit(1),500)"
/** UDP_ASK over IPv6, to ::1. */
const UDP_ASK6 = UDP_ASK.replace("createSocket('udp4')", "createSocket('udp6')").replace("'127.0.0.1'", "'::1'")

/** Retries `f` for up to ~3 s (a server that has just started may not listen yet). */
async function retry<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f()
    } catch (err) {
      if (i >= 30) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

describe('bridge networks', () => {
  it("the issue's snippet: a container reaches another by name", async () => {
    const image = env.image
    const net = await Network.create({ name: 'probe', runtime: rt })
    expect(net.subnet).toMatch(/^10\.89\.\d+\.0\/24$/)
    const web = await rt.create({ image, name: 'web', network: 'probe', cmd: ['busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc'] })
    await web.start()
    try {
      const r = await run({ waitForRemoval: true, runtime: rt, image, network: 'probe', cmd: ['busybox', 'wget', '-qO-', 'http://web:8080/hostname'] })
      expect(r.stderr).toBe('')
      expect(r.exitCode).toBe(0)
      expect(r.stdout).toBe('web\n')
    } finally {
      await web.delete({ force: true })
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('containers on one network talk TCP and see each other in a hosts file updated in place', async () => {
    const net = await Network.create({ name: 'talk', runtime: rt })
    const a = await rt.create({ image: env.image, name: 'alpha', network: 'talk', cmd: ['busybox', 'sh', '-c', 'busybox nc -l -p 7000 > /tmp/got; sleep 60'] })
    await a.start()
    try {
      // (alpha's nc may not listen yet when beta runs: beta tries again)
      const b = await run({ waitForRemoval: true, runtime: rt, image: env.image, name: 'beta', network: 'talk', cmd: ['busybox', 'sh', '-c', 'cat /etc/hostname; grep alpha /etc/hosts; grep beta /etc/hosts; for i in $(busybox seq 50); do echo hello | busybox nc alpha 7000 && exit 0; sleep 0.1; done; exit 1'] })
      expect(b.exitCode, b.stderr).toBe(0)
      const [alphaIp, betaIp] = [(await net.containers()).find((c) => c.name === 'alpha')?.ip, b.stdout.split('\n')[2]?.split('\t')[0]]
      expect(b.stdout.split('\n')[0]).toBe('beta')
      expect(b.stdout).toContain(`${alphaIp}\talpha`)
      expect(betaIp).toMatch(/^10\.89\./)
      let got = ''
      for (let i = 0; i < 50 && !got; i++) {
        got = (await a.exec(['cat', '/tmp/got'])).stdout
        if (!got) await new Promise((r) => setTimeout(r, 50))
      }
      expect(got).toBe('hello\n')
      // beta is gone (run() removes it in the background: wait for that): alpha's /etc/hosts
      // (the same file, rewritten in place) no longer lists it.
      await rt.idle()
      const hosts = (await a.exec(['cat', '/etc/hosts'])).stdout
      expect(hosts).toContain('\talpha\n')
      expect(hosts).not.toContain('beta')
      // eth0 with its address, the default route via the gateway, and the hostname.
      const ipOut = (await a.exec(['busybox', 'sh', '-c', 'busybox ip -4 addr show eth0; busybox ip route; hostname'])).stdout
      expect(ipOut).toContain(`inet ${alphaIp}/24`)
      expect(ipOut).toContain(`default via ${net.gateway} dev eth0`)
      expect(ipOut.trim().split('\n').at(-1)).toBe('alpha')
    } finally {
      await a.delete({ force: true })
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('containers on different networks cannot reach each other', async () => {
    const n1 = await Network.create({ name: 'left', runtime: rt })
    const n2 = await Network.create({ name: 'right', runtime: rt })
    expect(n1.subnet).not.toBe(n2.subnet)
    const web = await rt.create({ image: env.image, name: 'lweb', network: 'left', cmd: ['busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc'] })
    await web.start()
    try {
      const ip = (await n1.containers())[0]!.ip
      const same = await run({ waitForRemoval: true, runtime: rt, image: env.image, network: 'left', timeout: 10_000, cmd: ['busybox', 'wget', '-qO-', `http://${ip}:8080/hostname`] })
      expect(same.stdout, JSON.stringify(same)).toBe('lweb\n')
      const other = await run({ waitForRemoval: true, runtime: rt, image: env.image, network: 'right', timeout: 2000, cmd: ['busybox', 'wget', '-qO-', `http://${ip}:8080/hostname`] })
      expect(other.exitCode).not.toBe(0)
      expect(other.stdout).toBe('')
      const byName = await run({ waitForRemoval: true, runtime: rt, image: env.image, network: 'right', timeout: 2000, cmd: ['busybox', 'wget', '-qO-', 'http://lweb:8080/hostname'] })
      expect(byName.exitCode).not.toBe(0)
    } finally {
      await web.delete({ force: true })
      await n1.remove()
      await n2.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('a published port answers from the host netns (tcp and udp, IPv4 and IPv6)', async () => {
    const net = await Network.create({ name: 'pub', runtime: rt })
    const web = await rt.create({
      image: env.image, name: 'pweb', network: 'pub',
      publish: ['18080:8080', '[::1]:18081:8080', '15354:5353/udp', { hostPort: 15353, containerPort: 5353, protocol: 'udp', hostIp: '127.0.0.1' }],
      // busybox has no UDP server: the host's node (with its libraries) answers datagrams.
      mounts: [
        { type: 'bind', source: '/usr', target: '/usr', readonly: true },
        { type: 'bind', source: fsSync.realpathSync('/lib'), target: '/lib', readonly: true },
        { type: 'bind', source: fsSync.realpathSync('/lib64'), target: '/lib64', readonly: true },
      ],
      cmd: ['busybox', 'sh', '-c', `${process.execPath} -e "${UDP_ECHO}" & exec busybox httpd -f -p 8080 -h /etc`],
    })
    await web.start()
    try {
      expect(await retry(() => host.exec(['busybox', 'timeout', '5', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:18080/hostname']))).toBe('pweb\n')
      expect(await host.exec(['busybox', 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${net.gateway}:18080/hostname`])).toBe('pweb\n')
      expect(await retry(() => host.exec([process.execPath, '-e', UDP_ASK, '15353']))).toBe('pong:ping\n')
      // No host address: IPv6 as well, on the same port (one dual-stack socket), for tcp and udp.
      expect(await host.exec(['busybox', 'timeout', '5', 'busybox', 'wget', '-qO-', 'http://[::1]:18080/hostname'])).toBe('pweb\n')
      expect(await host.exec([process.execPath, '-e', UDP_ASK, '15354'])).toBe('pong:ping\n')
      expect(await host.exec([process.execPath, '-e', UDP_ASK6, '15354'])).toBe('pong:ping\n')
      // An address given is that address only: [::1] and not 127.0.0.1; 127.0.0.1 and not ::1.
      expect(await host.exec(['busybox', 'timeout', '5', 'busybox', 'wget', '-qO-', 'http://[::1]:18081/hostname'])).toBe('pweb\n')
      await expect(host.exec(['busybox', 'timeout', '2', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:18081/hostname'])).rejects.toThrow()
      await expect(host.exec([process.execPath, '-e', UDP_ASK6, '15353'])).rejects.toThrow()
      // A taken host port fails the start, naming the port, and leaves nothing behind.
      const clash = await rt.create({ image: env.image, name: 'clash', network: 'pub', publish: ['18080:80'], cmd: ['busybox', 'sleep', '60'] })
      await expect(clash.start()).rejects.toThrow(/18080\/tcp/)
      await clash.delete({ force: true })
    } finally {
      await web.delete({ force: true })
      await net.remove()
    }
    // The proxy is gone with its container: the port no longer answers.
    await expect(host.exec(['busybox', 'timeout', '2', 'busybox', 'wget', '-qO-', 'http://127.0.0.1:18080/hostname'])).rejects.toThrow()
    expect(await host.snapshot()).toEqual(clean)
  })

  it('an address is handed out once, reused only after its container is gone, and survives a new runtime', async () => {
    const net = await Network.create({ name: 'tiny', subnet: '10.77.0.0/29', runtime: rt })
    expect(net.gateway).toBe('10.77.0.1')
    const ipOf = async (name: string) => (await net.containers()).find((c) => c.name === name)?.ip
    const c1 = await rt.create({ image: env.image, name: 't1', network: 'tiny', cmd: ['true'] })
    const c2 = await rt.create({ image: env.image, name: 't2', network: 'tiny', cmd: ['true'] })
    expect([await ipOf('t1'), await ipOf('t2')]).toEqual(['10.77.0.2', '10.77.0.3'])
    // A crashed holder: an allocation whose container state no longer exists is reclaimed.
    // (An address is held by a symlink <ip> → its holder in <network>.ipam/.)
    const ghost = { containerId: 'f'.repeat(64), name: 'ghost', hostVeth: 'veffffffffffff' }
    await fs.symlink(JSON.stringify(ghost), path.join(env.dir, 'run', 'networks', 'tiny.ipam', '10.77.0.4'))
    // An IPAM file of the earlier format is taken over (and its crashed holder reclaimed too).
    const oldFile = path.join(env.dir, 'run', 'networks', 'tiny.ipam.json')
    await fs.writeFile(oldFile, JSON.stringify({ version: 1, allocations: { '10.77.0.6': { ...ghost, containerId: 'e'.repeat(64), name: 'ghost2' } } }))
    // Another runtime over the same state (a restarted process) sees t1 and t2.
    const rt2 = await Runtime.open({ root: path.join(env.dir, 'store'), stateRoot: path.join(env.dir, 'run'), cgroupParent: env.cgroupParent, fsync: false, hostNetns: host.pid })
    const c3 = await rt2.create({ image: env.image, name: 't3', network: 'tiny', cmd: ['true'] })
    expect(await ipOf('t3')).toBe('10.77.0.4')
    expect((await net.containers()).map((c) => c.name)).not.toContain('ghost')
    expect((await net.containers()).map((c) => c.name)).not.toContain('ghost2')
    expect(fsSync.existsSync(oldFile)).toBe(false)
    await c1.delete()
    const c4 = await rt.create({ image: env.image, name: 't4', network: 'tiny', cmd: ['true'] })
    expect(await ipOf('t4')).toBe('10.77.0.2')
    const c5 = await rt.create({ image: env.image, name: 't5', network: 'tiny', cmd: ['true'] })
    expect(await ipOf('t5')).toBe('10.77.0.5')
    const c6 = await rt.create({ image: env.image, name: 't6', network: 'tiny', cmd: ['true'] })
    expect(await ipOf('t6')).toBe('10.77.0.6')
    await expect(rt.create({ image: env.image, name: 't7', network: 'tiny', cmd: ['true'] })).rejects.toThrow(/no free address/)
    await expect(net.remove()).rejects.toThrow(/has containers/)
    for (const c of [c2, c3, c4, c5, c6]) await c.delete()
    expect(await net.containers()).toEqual([])
    await net.remove()
    expect(await Network.list({ runtime: rt })).toEqual([])
    expect(await host.snapshot()).toEqual(clean)
  })

  it("the default 'bridge' network is made on first use and removed with its last container", async () => {
    const r = await run({ waitForRemoval: true, runtime: rt, image: env.image, network: 'bridge', dns: ['192.0.2.53'], cmd: ['busybox', 'sh', '-c', 'cat /etc/resolv.conf; busybox ip route'] })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain('nameserver 192.0.2.53\n')
    expect(r.stdout).toMatch(/default via 10\.89\.\d+\.1 dev eth0/)
    await rt.idle() // run() leaves the network in the background
    expect(await Network.list({ runtime: rt })).toEqual([])
    expect(await host.snapshot()).toEqual(clean)
  })

  it('nft masquerades the subnet and isolates bridges, in the host netns only', async () => {
    const net = await Network.create({ name: 'natted', runtime: rt })
    try {
      const rules = await host.exec(['nft', 'list', 'table', 'ip', net.bridge])
      expect(rules).toContain(`ip saddr ${net.subnet} oifname != "${net.bridge}" masquerade`)
      expect(rules).toContain(`iifname "${net.bridge}" oifname != "${net.bridge}" oifname "ctr-*" drop`)
      expect((await host.exec(['cat', '/proc/sys/net/ipv4/ip_forward'])).trim()).toBe('1')
      await expect(Network.create({ name: 'natted', runtime: rt })).rejects.toThrow(/already exists/)
      await expect(Network.create({ name: 'clash', subnet: net.subnet, runtime: rt })).rejects.toThrow(/overlaps/)
      await expect(rt.create({ image: env.image, network: 'nosuch', cmd: ['true'] })).rejects.toThrow(/no such network/)
      expect((await Network.get('natted', { runtime: rt })).subnet).toBe(net.subnet)
    } finally {
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('outbound traffic is masqueraded: a server outside the host sees the host address', async () => {
    // An "outside" netns behind the test host: 192.0.2.1 (host) — 192.0.2.2 (outside). The
    // outside has no route to the containers' subnet, so only NAT lets replies come back.
    const outside = await spawn({ argv: ['/bin/sleep', '600'], namespaces: ['net'], stdio: ['ignore', 'ignore', 'ignore'] })
    let server: ChildProcess | undefined
    try {
      await host.exec(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'down0', 'netns', String(outside.pid)])
      await host.exec(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'up0'])
      await host.exec(['ip', 'link', 'set', 'up0', 'up'])
      const inOutside = ['nsenter', `--net=/proc/${outside.pid}/ns/net`]
      await execFileP(inOutside[0]!, [...inOutside.slice(1), 'ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'down0'])
      await execFileP(inOutside[0]!, [...inOutside.slice(1), 'ip', 'link', 'set', 'down0', 'up'])
      const before = await host.snapshot()
      server = spawnChild(inOutside[0]!, [...inOutside.slice(1), process.execPath, '-e',
        "require('http').createServer((q,r)=>r.end(q.socket.remoteAddress)).listen(80,'192.0.2.2',()=>console.log('ready'))"], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((resolve, reject) => {
        server!.stdout!.on('data', () => resolve())
        server!.on('exit', () => reject(new Error('the outside server exited')))
      })
      const r = await run({ waitForRemoval: true, runtime: rt, image: env.image, network: 'bridge', timeout: 10_000, cmd: ['busybox', 'wget', '-qO-', 'http://192.0.2.2/'] })
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('192.0.2.1')
      await rt.idle()
      expect(await host.snapshot()).toEqual(before)
    } finally {
      server?.kill('SIGKILL')
      if (server && server.exitCode === null && server.signalCode === null) await new Promise((r) => server!.once('exit', r))
      outside.kill('SIGKILL')
      await outside.exited
      await host.exec(['ip', 'link', 'del', 'up0']).catch(() => {})
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it("a crashed owner's container leaves its network when the next runtime opens", async () => {
    const c = await rt.create({ image: env.image, name: 'orphan', network: 'bridge', cmd: ['true'] })
    expect((await Network.list({ runtime: rt })).map((n) => n.name)).toEqual(['bridge'])
    // Its owner "crashed": the state names a process that is gone.
    const stateFile = path.join(env.dir, 'run', c.id, 'state.json')
    const st = JSON.parse(await fs.readFile(stateFile, 'utf8'))
    st.owner = { pid: 999_999_999, start: 1 }
    await fs.writeFile(stateFile, JSON.stringify(st))
    rt.forget(c.id)
    const rt2 = await Runtime.open({ root: path.join(env.dir, 'store'), stateRoot: path.join(env.dir, 'run'), cgroupParent: env.cgroupParent, fsync: false, hostNetns: host.pid })
    expect(await rt2.list()).toEqual([])
    expect(await Network.list({ runtime: rt })).toEqual([])
    expect(await host.snapshot()).toEqual(clean)
  })

  it('IPv6: an address of the subnet6 beside the IPv4 one (same host number), a default route, hosts entries, an ip6 nft table', async () => {
    const net = await Network.create({ name: 'six', subnet: '10.78.6.0/24', ipv6: true, runtime: rt })
    expect([net.subnet6, net.gateway6]).toEqual(['fd10:a4e:600::/64', 'fd10:a4e:600::1'])
    await expect(Network.create({ name: 'six2', subnet6: 'fd10:a4e:600:0:1::/80', runtime: rt })).rejects.toThrow(/overlaps network six/)
    await expect(Network.create({ name: 'six3', subnet6: 'fd10::1/64', runtime: rt })).rejects.toThrow(/host bits/)
    const a = await rt.create({ image: env.image, name: 'six-a', network: 'six', cmd: ['busybox', 'sleep', '60'] })
    try {
      await a.start()
      expect(await net.containers()).toEqual([{ id: a.id, name: 'six-a', ip: '10.78.6.2', ip6: 'fd10:a4e:600::2' }])
      const r = await run({
        waitForRemoval: true, runtime: rt, image: env.image, network: 'six', timeout: 10_000,
        cmd: ['busybox', 'sh', '-c', 'busybox ip -6 addr show dev eth0 scope global; busybox ip -6 route show default; busybox grep six-a /etc/hosts; busybox ping6 -c 1 -W 3 fd10:a4e:600::2 >/dev/null && echo pong-a; busybox ping6 -c 1 -W 3 fd10:a4e:600::1 >/dev/null && echo pong-gw'],
      })
      expect(r.stderr).toBe('')
      expect(r.stdout).toContain('inet6 fd10:a4e:600::3/64')
      expect(r.stdout).toMatch(/default via fd10:a4e:600::1 dev eth0/)
      expect(r.stdout).toContain('10.78.6.2\tsix-a\nfd10:a4e:600::2\tsix-a\n')
      expect(r.stdout).toContain('pong-a\npong-gw\n')
      expect(await host.exec(['nft', 'list', 'table', 'ip6', net.bridge])).toContain(`ip6 saddr ${net.subnet6} oifname != "${net.bridge}" masquerade`)
    } finally {
      await a.delete({ force: true })
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('containers started one after another (the later ones on spare netns): each its address, MAC, route, and the gateway answers', async () => {
    const net = await Network.create({ name: 'stream', subnet: '10.78.7.0/24', runtime: rt })
    try {
      for (let i = 0; i < 4; i++) {
        const r = await run({
          waitForRemoval: true, runtime: rt, image: env.image, network: 'stream', timeout: 10_000,
          cmd: ['busybox', 'sh', '-c', 'busybox ip -4 -o addr show dev eth0; busybox cat /sys/class/net/eth0/address; busybox ip route show default; busybox ping -c 1 -W 3 10.78.7.1 >/dev/null && echo pong'],
        })
        expect(r.stderr).toBe('')
        // The one run before is gone: each gets the first free address, .2, with its MAC.
        expect(r.stdout).toContain('inet 10.78.7.2/24')
        expect(r.stdout).toContain('02:42:0a:4e:07:02\n')
        expect(r.stdout).toContain('default via 10.78.7.1 dev eth0')
        expect(r.stdout).toContain('pong\n')
      }
    } finally {
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })

  it('parallel creates on one network get distinct addresses and hosts entries', async () => {
    const net = await Network.create({ name: 'many', runtime: rt })
    const cs = await Promise.all(Array.from({ length: 8 }, (_, i) => rt.create({ image: env.image, name: `m${i}`, network: 'many', cmd: ['true'] })))
    try {
      const ips = (await net.containers()).map((c) => c.ip)
      expect(new Set(ips).size).toBe(8)
      const hosts = await fs.readFile(path.join(env.dir, 'run', 'networks', 'many.hosts'), 'utf8')
      for (let i = 0; i < 8; i++) expect(hosts).toMatch(new RegExp(`\\tm${i}\\n`))
    } finally {
      await Promise.all(cs.map((c) => c.delete()))
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })
})
