/**
 * User-defined and default bridge networks: a Linux bridge `ctr-<name>` with the gateway
 * address in the host netns, an nft table for outbound NAT and isolation, IPAM in a locked
 * JSON file, and a hosts file every container on the network bind-mounts (so they reach each
 * other by name).
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { spawn, type Child } from '@ctr/namespaces'
import { containerResolvConf, type EtcFile } from '../container/etc-files.js'
import { RuntimeError } from '../errors.js'
import type { Runtime } from '../runtime.js'
import { contains, formatSubnet, intToIp, ipToInt, overlaps, parseSubnet } from './cidr.js'
import { installNat, removeNat } from './host.js'
import { openNetlink, withNetlink, type NetnsRef } from './netlink.js'
import { startProxy, type PublishedPort } from './proxy.js'
import { networkNameSchema, NetworkStore, type Ipam, type NetworkRecord } from './store.js'

/** The network `network: 'bridge'` uses: made on first use, removed with its last container. */
export const DEFAULT_NETWORK = 'bridge'
/** Subnets are allocated from here, one /24 per network. */
const POOL = parseSubnet('10.89.0.0/16')
const DEFAULT_POOL_PREFIX = 24

/** Options of {@link Network.create}. */
export interface NetworkCreateOptions {
  name: string
  /** IPv4 CIDR; default the first free /24 of 10.89.0.0/16. */
  subnet?: string
  /** Default the subnet's first address. */
  gateway?: string
  /** Where the bridge and nft rules live: a pid or a netns path. Default the runtime's (the caller's netns). */
  hostNetns?: NetnsRef
  /** Name servers for containers' /etc/resolv.conf (default the host's, minus loopback ones). */
  dns?: string[]
  /** Default the default runtime (its state directory holds networks). */
  runtime?: Runtime
}

async function runtimeOf(rt?: Runtime): Promise<Runtime> {
  if (rt) return rt
  const { getDefaultRuntime } = await import('../runtime.js')
  return getDefaultRuntime()
}

/** A bridge network. */
export class Network {
  readonly name: string
  readonly subnet: string
  readonly gateway: string
  /** The bridge's name in the host netns. */
  readonly bridge: string
  readonly hostNetns: NetnsRef | undefined
  #store: NetworkStore

  private constructor(rec: NetworkRecord, store: NetworkStore) {
    this.name = rec.name
    this.subnet = rec.subnet
    this.gateway = rec.gateway
    this.bridge = rec.bridge
    this.hostNetns = rec.hostNetns
    this.#store = store
  }

  /** Creates a network: a bridge with the gateway address, NAT out, a subnet of its own. */
  static async create(o: NetworkCreateOptions): Promise<Network> {
    const rt = await runtimeOf(o.runtime)
    const store = new NetworkStore(rt.states.root)
    const hostNetns = o.hostNetns ?? rt.hostNetns
    const rec = await store.locked(() => createLocked(store, { ...o, ...(hostNetns !== undefined ? { hostNetns } : {}) }, false))
    return new Network(rec, store)
  }

  /** A network by name. @throws RuntimeError ERR_RUNTIME_NOT_FOUND */
  static async get(name: string, o: { runtime?: Runtime } = {}): Promise<Network> {
    const store = new NetworkStore((await runtimeOf(o.runtime)).states.root)
    const rec = await store.read(name)
    if (!rec) throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `no such network: ${name}`)
    return new Network(rec, store)
  }

  static async list(o: { runtime?: Runtime } = {}): Promise<Network[]> {
    const store = new NetworkStore((await runtimeOf(o.runtime)).states.root)
    return (await store.list()).map((r) => new Network(r, store))
  }

  /** The containers holding an address on this network. */
  async containers(): Promise<{ id: string; name: string; ip: string }[]> {
    const ipam = await this.#store.readIpam(this.name)
    return Object.entries(ipam.allocations).map(([ip, a]) => ({ id: a.containerId, name: a.name, ip }))
  }

  /**
   * Removes the bridge, the nft table and the files. Refuses while a container (whose state
   * still exists) is on it.
   */
  async remove(): Promise<void> {
    await this.#store.locked(async () => {
      const rec = await this.#store.read(this.name)
      if (!rec) return
      const ipam = await pruneStale(this.#store, rec)
      const left = Object.values(ipam.allocations)
      if (left.length) {
        throw new RuntimeError('ERR_RUNTIME_CONFLICT', `network ${this.name} has containers: ${left.map((a) => a.name).join(', ')}`)
      }
      await teardownLocked(this.#store, rec)
    })
  }
}

function bridgeName(name: string): string {
  const b = `ctr-${name}`
  return b.length <= 15 && /^[A-Za-z0-9_-]+$/.test(name) ? b : `ctr-${createHash('sha256').update(name).digest('hex').slice(0, 11)}`
}

function nftTable(rec: NetworkRecord): string {
  return rec.bridge
}

function invalid(field: string, message: string): RuntimeError {
  return new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `${field}: ${message}`, { field })
}

async function createLocked(store: NetworkStore, o: Omit<NetworkCreateOptions, 'runtime'>, implicit: boolean): Promise<NetworkRecord> {
  const nameCheck = networkNameSchema.safeParse(o.name)
  if (!nameCheck.success) throw invalid('name', nameCheck.error.issues[0]!.message)
  if (o.name === 'none' || o.name === 'host') throw invalid('name', `"${o.name}" is a network mode`)
  if (await store.read(o.name)) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `network ${o.name} already exists`, { field: 'name' })
  const others = await store.list()
  let subnet
  if (o.subnet !== undefined) {
    try {
      subnet = parseSubnet(o.subnet)
    } catch (err) {
      throw invalid('subnet', (err as Error).message)
    }
    const clash = others.find((r) => overlaps(parseSubnet(r.subnet), subnet!))
    if (clash) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `subnet ${o.subnet} overlaps network ${clash.name} (${clash.subnet})`, { field: 'subnet' })
  } else {
    const size = 2 ** (32 - DEFAULT_POOL_PREFIX)
    for (let base = POOL.base; base < POOL.base + POOL.size; base += size) {
      const cand = { base, prefix: DEFAULT_POOL_PREFIX, size }
      if (!others.some((r) => overlaps(parseSubnet(r.subnet), cand))) {
        subnet = cand
        break
      }
    }
    if (!subnet) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `no free /${DEFAULT_POOL_PREFIX} left in ${formatSubnet(POOL)}`)
  }
  let gateway = subnet.base + 1
  if (o.gateway !== undefined) {
    try {
      gateway = ipToInt(o.gateway)
    } catch (err) {
      throw invalid('gateway', (err as Error).message)
    }
    if (!contains(subnet, gateway) || gateway === subnet.base || gateway === subnet.base + subnet.size - 1) {
      throw invalid('gateway', `${o.gateway} is not a host address of ${formatSubnet(subnet)}`)
    }
  }
  const bridge = bridgeName(o.name)
  if (others.some((r) => r.bridge === bridge)) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `bridge ${bridge} is taken`, { field: 'name' })
  const rec: NetworkRecord = {
    version: 1, name: o.name, subnet: formatSubnet(subnet), gateway: intToIp(gateway), bridge,
    ...(o.hostNetns !== undefined ? { hostNetns: o.hostNetns } : {}),
    implicit, ...(o.dns ? { dns: o.dns } : {}), created: new Date().toISOString(),
  }
  try {
    await setupHost(rec)
    await store.writeIpam(rec.name, { version: 1, allocations: {} })
    await store.writeHosts(rec.name, hostsText({ version: 1, allocations: {} }))
    await store.write(rec)
  } catch (err) {
    await teardownLocked(store, rec).catch(() => {})
    throw err
  }
  return rec
}

/** The bridge with its gateway address, up, and the NAT table, in the host netns. */
async function setupHost(rec: NetworkRecord): Promise<void> {
  const prefix = parseSubnet(rec.subnet).prefix
  await withNetlink(rec.hostNetns, async (nl) => {
    if (!(await nl.link(rec.bridge))) await nl.createBridge(rec.bridge)
    const addrs = await nl.addresses(rec.bridge)
    if (!addrs.some((a) => a.cidr === `${rec.gateway}/${prefix}`)) await nl.addAddress(rec.bridge, `${rec.gateway}/${prefix}`)
    await nl.setUp(rec.bridge)
  })
  await installNat(rec.hostNetns, nftTable(rec), rec.bridge, rec.subnet)
}

async function teardownLocked(store: NetworkStore, rec: NetworkRecord): Promise<void> {
  const failures: unknown[] = []
  await removeNat(rec.hostNetns, nftTable(rec)).catch((e: unknown) => failures.push(e))
  await withNetlink(rec.hostNetns, async (nl) => {
    if (await nl.link(rec.bridge)) await nl.deleteLink(rec.bridge)
  }).catch((e: unknown) => failures.push(e))
  await store.removeFiles(rec.name)
  if (failures.length) throw failures[0]
}

/** Drops allocations whose container state no longer exists (a crash), deleting their veths. */
async function pruneStale(store: NetworkStore, rec: NetworkRecord): Promise<Ipam> {
  const ipam = await store.readIpam(rec.name)
  const stale = Object.entries(ipam.allocations).filter(([, a]) => !existsSync(path.join(store.stateRoot, a.containerId, 'state.json')))
  if (!stale.length) return ipam
  await withNetlink(rec.hostNetns, async (nl) => {
    for (const [, a] of stale) if (await nl.link(a.hostVeth)) await nl.deleteLink(a.hostVeth).catch(() => {})
  }).catch(() => {})
  for (const [ip] of stale) delete ipam.allocations[ip]
  await store.writeIpam(rec.name, ipam)
  await store.writeHosts(rec.name, hostsText(ipam))
  return ipam
}

function hostsText(ipam: Ipam): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ]
  const entries = Object.entries(ipam.allocations).sort(([a], [b]) => ipToInt(a) - ipToInt(b))
  for (const [ip, a] of entries) lines.push(`${ip}\t${a.name}`)
  return `${lines.join('\n')}\n`
}

/** What the runtime asks of a container on a network. */
export interface JoinOptions {
  stateRoot: string
  /** The runtime's host netns: used when the default network is made. */
  hostNetns?: NetnsRef
  id: string
  name: string
  hostname: string
  network: string
  /** The container's state directory (its hostname and resolv.conf go there). */
  stateDir: string
  dns?: string[]
  publish?: PublishedPort[]
}

/** A container's place on a network, from create to delete. */
export class NetworkAttachment {
  #proxy: Child | undefined

  constructor(
    readonly network: NetworkRecord,
    readonly ip: string,
    readonly hostVeth: string,
    readonly etcFiles: EtcFile[],
    readonly publish: PublishedPort[],
  ) {}

  /**
   * Makes the container's network namespace ready before its process runs: a holder process
   * owns a new netns; a veth pair joins it to the bridge (`eth0` inside, with the address and
   * a default route). The container then joins that netns (`join.net`), and `started()`
   * lets the holder go.
   */
  async beforeStart(): Promise<{ netns: number; started: () => Promise<void>; abort: () => Promise<void> }> {
    const rec = this.network
    const sleep = ['/bin/sleep', '/usr/bin/sleep'].find((p) => existsSync(p)) ?? '/bin/sleep'
    const peer = `vp${randomBytes(5).toString('hex')}`
    const prefix = parseSubnet(rec.subnet).prefix
    // The holder's netns and the host side (is the bridge there?) at once.
    const [h, nl] = await Promise.allSettled([
      spawn({ argv: [sleep, '86400'], env: {}, namespaces: ['net'], stdio: ['ignore', 'ignore', 'ignore'] }),
      openNetlink(rec.hostNetns).then(async (nl) => {
        try {
          // The bridge may be gone (its netns restarted): bring it back.
          if (!(await nl.link(rec.bridge))) await setupHost(rec)
          return nl
        } catch (err) {
          nl.close()
          throw err
        }
      }),
    ])
    if (h.status === 'rejected' || nl.status === 'rejected') {
      if (h.status === 'fulfilled') { h.value.kill('SIGKILL'); await h.value.exited }
      if (nl.status === 'fulfilled') nl.value.close()
      const err = (h.status === 'rejected' ? h.reason : (nl as PromiseRejectedResult).reason) as Error
      throw new RuntimeError('ERR_RUNTIME_START', `attach to network ${rec.name}: ${err.message}`, { cause: err })
    }
    const holder = h.value
    const host = nl.value
    const dropHolder = async () => {
      holder.kill('SIGKILL')
      await holder.exited
    }
    try {
      try {
        await host.createVeth(this.hostVeth, peer, { peerNetns: holder.pid })
      } catch (err) {
        // A veth left by a crash of this very container id: replace it.
        if (!(await host.link(this.hostVeth))) throw err
        await host.deleteLink(this.hostVeth)
        await host.createVeth(this.hostVeth, peer, { peerNetns: holder.pid })
      }
      // Both ends at once: the host end into the bridge, the container end as eth0.
      const results = await Promise.allSettled([
        (async () => {
          await host.setMaster(this.hostVeth, rec.bridge)
          await host.setUp(this.hostVeth)
        })(),
        withNetlink(holder.pid, async (nl) => {
          await nl.rename(peer, 'eth0')
          await nl.addAddress('eth0', `${this.ip}/${prefix}`)
          await nl.setUp('eth0')
          await nl.addRoute({ dst: 'default', gateway: rec.gateway, dev: 'eth0' })
        }),
      ])
      for (const r of results) if (r.status === 'rejected') throw r.reason
    } catch (err) {
      await host.deleteLink(this.hostVeth).catch(() => {})
      await dropHolder()
      throw new RuntimeError('ERR_RUNTIME_START', `attach to network ${rec.name}: ${(err as Error).message}`, { cause: err })
    } finally {
      host.close()
    }
    return {
      netns: holder.pid,
      started: async () => {
        await dropHolder()
        if (this.publish.length) this.#proxy = await startProxy(rec.hostNetns, this.ip, this.publish)
      },
      abort: async () => {
        await dropHolder()
        await withNetlink(rec.hostNetns, (nl) => nl.deleteLink(this.hostVeth)).catch(() => {})
      },
    }
  }

  /** The container's process ended: stop its port proxy (the veth went with its netns). */
  async stopped(): Promise<void> {
    const p = this.#proxy
    this.#proxy = undefined
    if (p) {
      p.kill('SIGKILL')
      await p.exited
    }
  }
}

/** Allocates the container an address (and a hosts entry) and writes its /etc files. */
export async function joinNetwork(o: JoinOptions): Promise<NetworkAttachment> {
  const store = new NetworkStore(o.stateRoot)
  const hostVeth = `ve${o.id.slice(0, 12)}`
  const { rec, ip } = await store.locked(async () => {
    let rec = await store.read(o.network)
    if (!rec) {
      if (o.network !== DEFAULT_NETWORK) throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `no such network: ${o.network}`, { field: 'network' })
      rec = await createLocked(store, { name: DEFAULT_NETWORK, ...(o.hostNetns !== undefined ? { hostNetns: o.hostNetns } : {}) }, true)
    }
    const ipam = await pruneStale(store, rec)
    const s = parseSubnet(rec.subnet)
    const gw = ipToInt(rec.gateway)
    let ip: string | undefined
    for (let n = s.base + 1; n < s.base + s.size - 1; n++) {
      if (n === gw) continue
      const cand = intToIp(n)
      if (!ipam.allocations[cand]) {
        ip = cand
        break
      }
    }
    if (!ip) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `network ${rec.name} (${rec.subnet}) has no free address`, { field: 'network' })
    ipam.allocations[ip] = { containerId: o.id, name: o.name, hostVeth }
    await store.writeIpam(rec.name, ipam)
    await store.writeHosts(rec.name, hostsText(ipam))
    return { rec, ip }
  })
  const dns = o.dns ?? rec.dns
  const resolv = dns?.length ? dns.map((d) => `nameserver ${d}\n`).join('') : await containerResolvConf('none')
  await Promise.all([
    fs.writeFile(path.join(o.stateDir, 'hostname'), `${o.hostname}\n`, { mode: 0o644 }),
    fs.writeFile(path.join(o.stateDir, 'resolv.conf'), resolv, { mode: 0o644 }),
  ])
  const etcFiles: EtcFile[] = [
    { target: '/etc/hostname', source: path.join(o.stateDir, 'hostname') },
    { target: '/etc/hosts', source: store.file(rec.name, 'hosts') },
    { target: '/etc/resolv.conf', source: path.join(o.stateDir, 'resolv.conf') },
  ]
  return new NetworkAttachment(rec, ip, hostVeth, etcFiles, o.publish ?? [])
}

/**
 * Releases a container's place: its host veth (if its netns still holds it), its address and
 * hosts entry; an implicit network goes with its last container. Idempotent.
 */
export async function leaveNetwork(o: { stateRoot: string; id: string; network: string }): Promise<void> {
  const store = new NetworkStore(o.stateRoot)
  await store.locked(async () => {
    const rec = await store.read(o.network)
    if (!rec) return
    const ipam = await store.readIpam(rec.name)
    const mine = Object.entries(ipam.allocations).filter(([, a]) => a.containerId === o.id)
    if (mine.length) {
      await withNetlink(rec.hostNetns, async (nl) => {
        for (const [, a] of mine) if (await nl.link(a.hostVeth)) await nl.deleteLink(a.hostVeth).catch(() => {})
      })
      for (const [ip] of mine) delete ipam.allocations[ip]
      await store.writeIpam(rec.name, ipam)
      await store.writeHosts(rec.name, hostsText(ipam))
    }
    if (rec.implicit && Object.keys(ipam.allocations).length === 0) await teardownLocked(store, rec)
  })
}

/**
 * After a crash: drops every network's allocations whose container state is gone, and
 * removes implicit networks left without containers. Returns the networks removed.
 */
export async function pruneNetworks(stateRoot: string): Promise<string[]> {
  const store = new NetworkStore(stateRoot)
  if (!existsSync(store.dir)) return []
  return store.locked(async () => {
    const removed: string[] = []
    for (const rec of await store.list()) {
      const ipam = await pruneStale(store, rec)
      if (rec.implicit && Object.keys(ipam.allocations).length === 0) {
        await teardownLocked(store, rec).catch(() => {})
        removed.push(rec.name)
      }
    }
    return removed
  })
}

/** Whether `network` (a name, not a mode) can be joined: it exists, or it is the default one. */
export async function networkExists(stateRoot: string, network: string): Promise<boolean> {
  return network === DEFAULT_NETWORK || (await new NetworkStore(stateRoot).read(network)) !== undefined
}
