/**
 * User-defined and default bridge networks: a Linux bridge `ctr-<name>` with the gateway
 * address in the host netns, an nft table for outbound NAT and isolation, IPAM in a locked
 * JSON file, and a hosts file every container on the network bind-mounts (so they reach each
 * other by name).
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { close } from '@ctr/native'
import { Netlink, NetlinkError, type Child, type NetlinkBatch } from '@ctr/namespaces'
import { containerResolvConf, type EtcFile } from '../container/etc-files.js'
import { RuntimeError } from '../errors.js'
import type { Runtime } from '../runtime.js'
import { contains, defaultSubnet6, formatSubnet, formatSubnet6, hostAddress6, intToIp, ipToInt, overlaps, parseSubnet, parseSubnet6, type Subnet6 } from './cidr.js'
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
  /**
   * IPv6 too: every container gets an address of `subnet6` beside its IPv4 one (the same host
   * number), and a default route through the bridge. Default off.
   */
  ipv6?: boolean
  /** IPv6 CIDR (/48../120; implies `ipv6`); default the ULA `fd10:<the IPv4 subnet's 32 bits>::/64`. */
  subnet6?: string
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
  /** With IPv6: its subnet and the bridge's address. */
  readonly subnet6: string | undefined
  readonly gateway6: string | undefined
  /** The bridge's name in the host netns. */
  readonly bridge: string
  readonly hostNetns: NetnsRef | undefined
  #store: NetworkStore

  private constructor(rec: NetworkRecord, store: NetworkStore) {
    this.name = rec.name
    this.subnet = rec.subnet
    this.gateway = rec.gateway
    this.subnet6 = rec.subnet6
    this.gateway6 = rec.gateway6
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
    const rec = store.read(name)
    if (!rec) throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `no such network: ${name}`)
    return new Network(rec, store)
  }

  static async list(o: { runtime?: Runtime } = {}): Promise<Network[]> {
    const store = new NetworkStore((await runtimeOf(o.runtime)).states.root)
    return store.list().map((r) => new Network(r, store))
  }

  /** The containers holding an address on this network. */
  async containers(): Promise<{ id: string; name: string; ip: string; ip6?: string }[]> {
    const rec = this.#store.read(this.name)
    const ipam = this.#store.readIpam(this.name)
    return Object.entries(ipam.allocations).map(([ip, a]) => {
      const ip6 = rec ? address6(rec, ip) : undefined
      return { id: a.containerId, name: a.name, ip, ...(ip6 ? { ip6 } : {}) }
    })
  }

  /**
   * Removes the bridge, the nft table and the files. Refuses while a container (whose state
   * still exists) is on it.
   */
  async remove(): Promise<void> {
    await this.#store.locked(async () => {
      const rec = this.#store.read(this.name)
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
  if (store.read(o.name)) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `network ${o.name} already exists`, { field: 'name' })
  const others = store.list()
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
  let subnet6: Subnet6 | undefined
  if (o.subnet6 !== undefined) {
    try {
      subnet6 = parseSubnet6(o.subnet6)
    } catch (err) {
      throw invalid('subnet6', (err as Error).message)
    }
  } else if (o.ipv6) subnet6 = defaultSubnet6(subnet)
  if (subnet6) {
    const clash = others.find((r) => r.subnet6 !== undefined && overlaps6(parseSubnet6(r.subnet6), subnet6!))
    if (clash) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `subnet ${formatSubnet6(subnet6)} overlaps network ${clash.name} (${clash.subnet6})`, { field: 'subnet6' })
    if (subnet.size - 1 > 2 ** Math.min(31, 128 - subnet6.prefix)) throw invalid('subnet6', `${formatSubnet6(subnet6)} has fewer addresses than ${formatSubnet(subnet)}`)
  }
  const bridge = bridgeName(o.name)
  if (others.some((r) => r.bridge === bridge)) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `bridge ${bridge} is taken`, { field: 'name' })
  const rec: NetworkRecord = {
    version: 1, name: o.name, subnet: formatSubnet(subnet), gateway: intToIp(gateway), bridge,
    ...(subnet6 ? { subnet6: formatSubnet6(subnet6), gateway6: hostAddress6(subnet6, gateway - subnet.base) } : {}),
    ...(o.hostNetns !== undefined ? { hostNetns: o.hostNetns } : {}),
    implicit, ...(o.dns ? { dns: o.dns } : {}), created: new Date().toISOString(),
  }
  try {
    await setupHost(rec)
    store.resetIpam(rec.name)
    store.writeHosts(rec.name, hostsText(rec, { version: 1, allocations: {} }))
    store.write(rec)
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
    if (rec.gateway6 && rec.subnet6) {
      const cidr6 = `${rec.gateway6}/${parseSubnet6(rec.subnet6).prefix}`
      if (!addrs.some((a) => a.cidr === cidr6)) await nl.addAddress(rec.bridge, cidr6, { nodad: true })
    }
    await nl.setUp(rec.bridge)
  })
  await installNat(rec.hostNetns, nftTable(rec), rec.bridge, rec.subnet, rec.subnet6)
}

/** The bridge's index in the host netns; the bridge is made again if its netns lost it (restarted). */
async function bridgeIndex(nl: Netlink, rec: NetworkRecord): Promise<number> {
  const l = await nl.link(rec.bridge)
  if (l) return l.index
  await setupHost(rec)
  const again = await nl.link(rec.bridge)
  if (!again) throw new RuntimeError('ERR_RUNTIME_STATE', `bridge ${rec.bridge} of network ${rec.name} is missing`)
  return again.index
}

async function teardownLocked(store: NetworkStore, rec: NetworkRecord): Promise<void> {
  const failures: unknown[] = []
  await drainSpares(rec)
  await removeNat(rec.hostNetns, nftTable(rec)).catch((e: unknown) => failures.push(e))
  await withNetlink(rec.hostNetns, async (nl) => {
    // Ports still there: veths whose netns the kernel has not freed yet (or a crash's).
    const links = await nl.links()
    if (!links.some((l) => l.name === rec.bridge)) return
    const b = nl.batch()
    for (const l of links) if (l.master === rec.bridge) b.deleteLink({ index: l.index })
    await b.send().catch(() => {}) // ENODEV: freed meanwhile
    await nl.deleteLink(rec.bridge)
  }).catch((e: unknown) => failures.push(e))
  store.removeFiles(rec.name)
  if (failures.length) throw failures[0]
}

/** Drops allocations whose container state no longer exists (a crash), deleting their veths. Under the lock. */
async function pruneStale(store: NetworkStore, rec: NetworkRecord): Promise<Ipam> {
  const ipam = store.readIpam(rec.name)
  const stale = Object.entries(ipam.allocations).filter(([, a]) => !existsSync(path.join(store.stateRoot, a.containerId, 'state.json')))
  if (!stale.length) return ipam
  await deleteLinks(rec.hostNetns, stale.map(([, a]) => a.hostVeth))
  for (const [ip, a] of stale) {
    store.release(rec.name, ip, a.containerId)
    delete ipam.allocations[ip]
  }
  store.writeHosts(rec.name, hostsText(rec, ipam))
  return ipam
}

/** Deletes links by name in the host netns, in one request; absent ones are fine. */
async function deleteLinks(netns: NetnsRef | undefined, names: string[]): Promise<void> {
  if (!names.length) return
  await withNetlink(netns, async (nl) => {
    const b = nl.batch()
    for (const n of names) b.deleteLink(n)
    await b.send().catch(() => {}) // ENODEV: gone with its netns already
  }).catch(() => {})
}

/** A container's IPv6 address on an IPv6 network: the same host number as its IPv4 one. */
function address6(rec: NetworkRecord, ip: string): string | undefined {
  if (!rec.subnet6) return undefined
  return hostAddress6(parseSubnet6(rec.subnet6), ipToInt(ip) - parseSubnet(rec.subnet).base)
}

function overlaps6(a: Subnet6, b: Subnet6): boolean {
  const bits = Math.min(a.prefix, b.prefix)
  for (let bit = 0; bit < bits; bit++) {
    const m = 0x80 >> (bit & 7)
    if ((a.bytes[bit >> 3]! & m) !== (b.bytes[bit >> 3]! & m)) return false
  }
  return true
}

function hostsText(rec: NetworkRecord, ipam: Ipam): string {
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
  if (rec.subnet6) for (const [ip, a] of entries) lines.push(`${address6(rec, ip)}\t${a.name}`)
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

/** What {@link NetworkAttachment.prepare} makes: a netns held by two fds of ours, wired to the bridge. */
interface PreparedNetns {
  /** `/proc/self/fd/N`: what the container joins. */
  path: string
  /** The host end of its veth (a spare's has a name of its own). */
  hostVeth: string
  /** Closes our fds (idempotent): the netns then lives as long as a process is in it. */
  release: () => void
}

/**
 * A container's place on a network, from create to delete: an address at create, a network
 * namespace made at start (see {@link prepare}), a port proxy torn down after its exit is
 * reported (see {@link stopped}).
 */
export class NetworkAttachment {
  #proxy: Child | undefined
  #prepared: Promise<PreparedNetns> | undefined
  #started = false
  #teardown: Promise<void> | undefined

  constructor(
    readonly network: NetworkRecord,
    readonly ip: string,
    readonly hostVeth: string,
    readonly etcFiles: EtcFile[],
    readonly publish: PublishedPort[],
  ) {
    live.set(hostVeth, this)
  }

  /**
   * Makes the container's network namespace (once). No process holds it: the addon makes the
   * namespace on a short-lived thread and hands back a socket inside it and an fd of it. One
   * batch of requests there makes the veth pair — `eth0` (index 2: only `lo` exists yet, and
   * a MAC derived from the address) up, its peer created directly in the host netns — and
   * brings `lo` up, adds the address and the default route; one request in the host netns
   * puts the peer in the bridge and up. Each runs on this thread (`sendSync`): a few tens of
   * microseconds of kernel work each, less than a round trip through a worker thread, and
   * start has nothing else to do meanwhile. (Made while the container's root and cgroup are,
   * at create, it was slower: the blocked thread held up their steps.) With a spare netns of
   * the network at hand (see `refillSpares`), only the MAC, the addresses and the routes are
   * left to set.
   */
  prepare(): Promise<PreparedNetns> {
    if (!this.#prepared) {
      this.#prepared = this.#prepare()
      this.#prepared.catch(() => {}) // start() or delete() sees the failure
    }
    return this.#prepared
  }

  async #prepare(): Promise<PreparedNetns> {
    const rec = this.network
    const prefix = parseSubnet(rec.subnet).prefix
    const key = spareKey(rec)
    const ip6 = address6(rec, this.ip)
    // What makes a netns with a veth (eth0 inside, its peer in the bridge) this container's.
    const configure = (b: NetlinkBatch) => {
      b.setLink({ index: 1 }, { up: true })
        .addAddress({ index: 2 }, `${this.ip}/${prefix}`)
        .addRoute({ dst: 'default', gateway: rec.gateway, oif: 2 })
      // IPv6: usable at once (no duplicate address detection: the IPAM hands it out once).
      if (ip6 && rec.subnet6 && rec.gateway6) {
        b.addAddress({ index: 2 }, `${ip6}/${parseSubnet6(rec.subnet6).prefix}`, { nodad: true })
        b.addRoute({ dst: 'default', gateway: rec.gateway6, oif: 2 })
      }
      return b
    }
    const host = await openNetlink(rec.hostNetns)
    let inner: ReturnType<typeof Netlink.openNewNetnsSync> | undefined
    const release = () => {
      const i = inner
      inner = undefined
      if (!i) return
      i.netlink.close()
      close(i.netnsFd)
    }
    let hostVeth = this.hostVeth
    try {
      // From here on every request waits on this thread: each is a few tens of microseconds
      // of kernel work, less than a round trip through a worker thread.
      let spare = takeSpare(key)
      if (!spare && spareMaking.has(key)) {
        // One is on its way: waiting for the rest of it beats making another beside it.
        await spareMaking.get(key)
        spare = takeSpare(key)
      }
      if (spare) {
        try {
          // Still a port of the bridge (setting the same master again costs nothing).
          host.batch().setLink(spare.peer, { master: spare.bridge }).sendSync()
          inner = spare.ns
          hostVeth = spare.peer
          configure(spare.ns.netlink.batch().setLink({ index: 2 }, { mac: macOf(this.ip), up: true })).sendSync()
          return { path: spare.ns.path, hostVeth, release }
        } catch {
          // The bridge changed under it: make one afresh.
          if (inner !== spare.ns) dropSpare(spare)
          release()
          hostVeth = this.hostVeth
        }
      }
      // The bridge's index: remembered (checked below, when the peer joins it).
      let bridge = bridges.get(key) ?? (await bridgeIndex(host, rec))
      bridges.set(key, bridge)
      const ns = (inner = Netlink.openNewNetnsSync())
      const hostNs = rec.hostNetns ?? '/proc/self/ns/net'
      const attach = () =>
        configure(ns.netlink.batch().createVeth({ name: 'eth0', index: 2, mac: macOf(this.ip), up: true, peer: { name: this.hostVeth, netns: hostNs } })).sendSync()
      try {
        attach()
      } catch (err) {
        // A host veth left by a crash of this very container id: replace it.
        if (!(err instanceof NetlinkError && err.errnoCode === 'EEXIST')) throw err
        host.batch().deleteLink(this.hostVeth).sendSync()
        attach()
      }
      try {
        host.batch().setLink(this.hostVeth, { master: bridge, up: true }).sendSync()
      } catch {
        // The bridge is not the one remembered (its netns restarted, it was made again): look again.
        bridges.delete(key)
        bridge = await bridgeIndex(host, rec)
        bridges.set(key, bridge)
        host.batch().setLink(this.hostVeth, { master: bridge, up: true }).sendSync()
      }
      return { path: ns.path, hostVeth, release }
    } catch (err) {
      release()
      await host.batch().deleteLink(hostVeth).send().catch(() => {})
      throw err
    } finally {
      host.close()
    }
  }

  /**
   * The network namespace the container's process joins (`join.net`: `/proc/self/fd/N`).
   * `started()` closes our fds once it runs there: the namespace, and the veth pair with it,
   * then lives as long as the container's processes.
   */
  async beforeStart(): Promise<{ netns: string; started: () => Promise<void>; abort: () => Promise<void> }> {
    let p: PreparedNetns
    try {
      p = await this.prepare()
    } catch (err) {
      throw new RuntimeError('ERR_RUNTIME_START', `attach to network ${this.network.name}: ${(err as Error).message}`, { cause: err })
    }
    this.#started = true
    return {
      netns: p.path,
      started: async () => {
        p.release()
        refillSpares(this.network)
        if (this.publish.length) this.#proxy = await startProxy(this.network.hostNetns, this.ip, this.publish)
      },
      abort: async () => {
        p.release()
        await deleteLinks(this.network.hostNetns, [p.hostVeth])
      },
    }
  }

  /**
   * The container's process ended: its port proxy goes (killed and reaped before the exit is
   * reported, so that a reported exit means a closed port). The veth pair goes with the
   * container's netns (the kernel frees it shortly after; a network's removal deletes what
   * is still there).
   */
  async stopped(): Promise<void> {
    if (!this.#teardown) {
      const proxy = this.#proxy
      this.#proxy = undefined
      proxy?.kill('SIGKILL')
      this.#teardown = proxy ? proxy.exited.then(() => undefined, () => undefined) : Promise.resolve()
    }
    await this.#teardown
  }

  /** The container is deleted: whatever is left of its network side goes (`leaveNetwork` calls this). */
  async release(): Promise<void> {
    live.delete(this.hostVeth)
    if (!this.#started && this.#prepared) {
      // Made, never started: our fds held the netns (and with it the veth pair).
      const p = await this.#prepared.catch(() => undefined)
      p?.release()
    }
    await this.stopped()
    await this.#teardown
  }
}

/**
 * A container's MAC address, from its IPv4 address (Docker's scheme: 02:42 and the four
 * bytes): an address handed out again comes with the same MAC, so neighbours' ARP entries for
 * it stay right while the previous holder's netns is still being freed.
 */
function macOf(ip: string): string {
  return ['02', '42', ...ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0'))].join(':')
}

/**
 * Spare network namespaces, per network: when a process starts containers on a network one
 * after another (a second within {@link SPARE_IDLE_MS} of the first), it keeps one netns
 * ready — `eth0` (down) inside with its peer already a port of the bridge, `lo` up — made in
 * the background (worker threads) while the container runs. The next start then only sets
 * the MAC, the addresses and the routes: the veth pair's creation, most of the kernel's work,
 * is off its path. A spare unused for {@link SPARE_IDLE_MS} is closed (its netns, and the
 * veth pair with it, go); a network's removal closes its spares.
 */
interface Spare {
  ns: { netlink: Netlink; netnsFd: number; path: string }
  peer: string
  bridge: number
  timer: NodeJS.Timeout
}
const SPARE_IDLE_MS = 2000
const spares = new Map<string, Spare[]>()
/** Spares being made, by network: a network's removal waits for them. */
const spareMaking = new Map<string, Promise<void>>()
const lastStart = new Map<string, number>()

function spareKey(rec: NetworkRecord): string {
  return `${rec.hostNetns ?? ''}\0${rec.bridge}`
}

function dropSpare(s: Spare): void {
  clearTimeout(s.timer)
  s.ns.netlink.close()
  close(s.ns.netnsFd)
}

function takeSpare(key: string): Spare | undefined {
  const list = spares.get(key)
  const s = list?.shift()
  if (list && !list.length) spares.delete(key)
  if (s) clearTimeout(s.timer)
  return s
}

/** Closes a network's spares, once the one being made (if any) is there (before its bridge goes). */
async function drainSpares(rec: NetworkRecord): Promise<void> {
  const key = spareKey(rec)
  await spareMaking.get(key)
  lastStart.delete(key)
  for (const s of spares.get(key) ?? []) dropSpare(s)
  spares.delete(key)
}

/** After a start: makes a spare in the background if containers are being started here one after another. */
function refillSpares(rec: NetworkRecord): void {
  const key = spareKey(rec)
  const now = Date.now()
  const last = lastStart.get(key)
  lastStart.set(key, now)
  if (last === undefined || now - last > SPARE_IDLE_MS || spareMaking.has(key) || spares.get(key)?.length) return
  // Not on the start's path: even opening the host netns's socket waits for a thread.
  const making = new Promise<void>((resolve) => setImmediate(resolve))
    .then(() => makeSpare(rec, key))
    .catch(() => {})
    .finally(() => spareMaking.delete(key))
  spareMaking.set(key, making)
}

async function makeSpare(rec: NetworkRecord, key: string): Promise<void> {
  const host = await openNetlink(rec.hostNetns)
  let ns: Spare['ns'] | undefined
  const peer = `vp${randomBytes(6).toString('hex')}`
  try {
    const bridge = bridges.get(key) ?? (await bridgeIndex(host, rec))
    ns = await Netlink.openNewNetns()
    await ns.netlink.batch()
      .createVeth({ name: 'eth0', index: 2, peer: { name: peer, netns: rec.hostNetns ?? '/proc/self/ns/net' } })
      .setLink({ index: 1 }, { up: true })
      .send()
    await host.batch().setLink(peer, { master: bridge, up: true }).send()
    const s: Spare = {
      ns, peer, bridge,
      timer: setTimeout(() => {
        const list = spares.get(key)
        const i = list?.indexOf(s) ?? -1
        if (i >= 0) list!.splice(i, 1)
        if (list && !list.length) spares.delete(key)
        dropSpare(s)
      }, SPARE_IDLE_MS).unref(),
    }
    const list = spares.get(key) ?? []
    list.push(s)
    spares.set(key, list)
  } catch (err) {
    // Nothing half-made is left: the peer goes now (closing the netns would free it only lazily).
    await host.batch().deleteLink(peer).send().catch(() => {})
    if (ns) {
      ns.netlink.close()
      close(ns.netnsFd)
    }
    throw err
  } finally {
    host.close()
  }
}

/** Bridge indexes by host netns and bridge name (checked on use). */
const bridges = new Map<string, number>()

/** The attachments of this process's containers, by host veth name (see `leaveNetwork`). */
const live = new Map<string, NetworkAttachment>()

/** Allocates the container an address (and a hosts entry) and writes its /etc files. */
export async function joinNetwork(o: JoinOptions): Promise<NetworkAttachment> {
  const store = new NetworkStore(o.stateRoot)
  const hostVeth = `ve${o.id.slice(0, 12)}`
  const { rec, ip } = await store.locked(async () => {
    let rec = store.read(o.network)
    if (!rec) {
      if (o.network !== DEFAULT_NETWORK) throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `no such network: ${o.network}`, { field: 'network' })
      rec = await createLocked(store, { name: DEFAULT_NETWORK, ...(o.hostNetns !== undefined ? { hostNetns: o.hostNetns } : {}) }, true)
    }
    const ipam = await pruneStale(store, rec)
    const s = parseSubnet(rec.subnet)
    const gw = ipToInt(rec.gateway)
    const mine = { containerId: o.id, name: o.name, hostVeth }
    let ip: string | undefined
    for (let n = s.base + 1; n < s.base + s.size - 1 && ip === undefined; n++) {
      const cand = intToIp(n)
      if (n !== gw && !ipam.allocations[cand] && store.allocate(rec.name, cand, mine)) ip = cand
    }
    if (!ip) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `network ${rec.name} (${rec.subnet}) has no free address`, { field: 'network' })
    ipam.allocations[ip] = mine
    store.writeHosts(rec.name, hostsText(rec, ipam))
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
 * Releases a container's place: its address and hosts entry; an implicit network goes with
 * its last container. Its veth pair went with its netns (the kernel frees a netns lazily: a
 * network's removal deletes the ports its bridge still has). Idempotent.
 */
export async function leaveNetwork(o: { stateRoot: string; id: string; network: string }): Promise<void> {
  const store = new NetworkStore(o.stateRoot)
  const rec = store.read(o.network)
  if (!rec) return
  await store.locked(async () => {
    if (!existsSync(store.file(rec.name, 'json'))) return
    const ipam = store.readIpam(rec.name)
    const mine = Object.entries(ipam.allocations).filter(([, a]) => a.containerId === o.id)
    for (const [ip] of mine) {
      store.release(rec.name, ip, o.id)
      delete ipam.allocations[ip]
    }
    if (mine.length) store.writeHosts(rec.name, hostsText(rec, ipam))
    if (rec.implicit && Object.keys(ipam.allocations).length === 0) await teardownLocked(store, rec)
    return mine.map(([, a]) => a.hostVeth)
  }).then((veths) => Promise.all((veths ?? []).map((v) => live.get(v)?.release())))
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
    for (const rec of store.list()) {
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
  return network === DEFAULT_NETWORK || new NetworkStore(stateRoot).read(network) !== undefined
}
