/**
 * `Netlink`: rtnetlink for network namespaces — links (veth, bridge), their state, names,
 * MTU, namespaces and masters, IPv4/IPv6 addresses and routes. Messages are built and parsed
 * here; the native addon only opens the socket (inside the asked-for netns) and moves bytes.
 */
import fs from 'node:fs'
import { close as closeFd, netlinkOpen, netlinkOpenNewNetns, netlinkOpenNewNetnsSync, netlinkRequest, netlinkRequestSync } from '@ctr/native'
import { InvalidOptionsError } from '../errors.js'
import { formatIp, maskBytes, parseCidr, type Cidr } from './addr.js'
import * as C from './constants.js'
import {
  attrString,
  attrU32,
  bytesAttr,
  encodeIfAddr,
  encodeIfInfo,
  encodeMessage,
  encodeRt,
  formatMac,
  messageBody,
  nestAttr,
  parseAttrs,
  parseError,
  parseHeader,
  parseIfAddr,
  parseIfInfo,
  parseRt,
  strAttr,
  u32Attr,
  type Attr,
} from './messages.js'
import { NetlinkError } from './errors.js'

/** A network namespace: a pid (its `/proc/<pid>/ns/net`) or a path (`/run/netns/x`, `/proc/<pid>/ns/net`). */
export type NetnsRef = number | string

/** A network interface as `links()` reports it. */
export interface Link {
  index: number
  name: string
  mtu: number
  /** Administratively up (IFF_UP). */
  up: boolean
  /** The link-layer address, `aa:bb:cc:dd:ee:ff`; undefined for links without one. */
  mac?: string
  /** The rtnetlink kind: `veth`, `bridge`, … (undefined for e.g. loopback). */
  kind?: string
  /** The name of the bridge this link is a port of. */
  master?: string
}

export interface AddressInfo {
  link: string
  cidr: string
  family: 4 | 6
}

export interface RouteSpec {
  /** `default`, or a CIDR (`10.88.0.0/16`, `fd00::/64`; host bits are cleared). */
  dst: string
  gateway?: string
  /** The output link's name. */
  dev?: string
  /** Needed only for `default` without a gateway; otherwise taken from the addresses. */
  family?: 4 | 6
}

export interface RouteInfo {
  dst: string
  gateway?: string
  dev?: string
  family: 4 | 6
}

/** A link in a {@link NetlinkBatch}: by name, or by index (addresses and routes need the index). */
export type LinkRef = string | { index: number }

/** A link's settings in one request: {@link NetlinkBatch.setLink}. */
export interface LinkSettings {
  up?: boolean
  /** The link-layer address, `aa:bb:cc:dd:ee:ff` (set before `up` in the same request). */
  mac?: string
  /** The bridge's index (0: no bridge). */
  master?: number
  mtu?: number
}

/** A veth pair made in one request: {@link NetlinkBatch.createVeth}. */
export interface VethSpec {
  name: string
  /** Ask for this index (free in this namespace), so later requests of a batch can name it. */
  index?: number
  /** The link-layer address of this end, `aa:bb:cc:dd:ee:ff` (default random). */
  mac?: string
  up?: boolean
  mtu?: number
  /** The bridge (index) this end becomes a port of. */
  master?: number
  peer: {
    name: string
    /** Where the peer is made: a pid or a path (`/proc/self/fd/N` for {@link Netlink.openNewNetns}'s fd). */
    netns?: NetnsRef
  }
}

// ---------------------------------------------------------------- validation

const invalid = (field: string, message: string): never => {
  throw new InvalidOptionsError(field, message)
}

function checkName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || name.length === 0) return invalid(field, 'must be a non-empty interface name')
  if (Buffer.byteLength(name) > 15) return invalid(field, `"${name}" is longer than 15 bytes (IFNAMSIZ)`)
  if (/[/\s:\0]/.test(name) || name === '.' || name === '..') return invalid(field, `"${name}" is not a valid interface name`)
  return name
}

function checkMtu(mtu: unknown, field = 'mtu'): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 68 || mtu > 65535) return invalid(field, `${String(mtu)} is not an MTU (68-65535)`)
  return mtu
}

function checkCidr(text: unknown, field: string): Cidr {
  const c = typeof text === 'string' ? parseCidr(text) : undefined
  if (!c) return invalid(field, `${JSON.stringify(text)} is not an IPv4 or IPv6 address with an optional /prefix`)
  return c
}

function checkMac(mac: unknown, field = 'mac'): Buffer {
  if (typeof mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) return invalid(field, `${String(mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)`)
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)))
}

function checkIndex(i: unknown, field: string): number {
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 1 || i > 0x7fffffff) return invalid(field, `${String(i)} is not an interface index`)
  return i
}

function checkLinkRef(l: unknown, field = 'link'): { index: number; name?: string } {
  if (typeof l === 'object' && l !== null) return { index: checkIndex((l as { index?: unknown }).index, `${field}.index`) }
  return { index: 0, name: checkName(l, field) }
}

const linkText = (l: { index: number; name?: string }): string => l.name ?? `#${l.index}`

function checkNetns(ns: unknown, field: string): NetnsRef {
  if (typeof ns === 'number' && Number.isInteger(ns) && ns > 0) return ns
  if (typeof ns === 'string' && ns.startsWith('/') && !ns.includes('\0')) return ns
  return invalid(field, `${String(ns)} is neither a pid nor an absolute path of a network namespace`)
}

const netnsPath = (ns: NetnsRef): string => (typeof ns === 'number' ? `/proc/${ns}/ns/net` : ns)

/** Opens a netns file and runs `fn` with its fd; the fd is always closed. */
async function withNetnsFd<T>(ns: NetnsRef, operation: string, fn: (fd: number) => T | Promise<T>): Promise<T> {
  let fd: number
  try {
    fd = fs.openSync(netnsPath(ns), 'r') // libuv adds O_CLOEXEC
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new NetlinkError(`${operation}: open ${netnsPath(ns)}`, e.errno ? Math.abs(e.errno) : 2, { cause: err })
  }
  try {
    return await fn(fd)
  } finally {
    fs.closeSync(fd)
  }
}

// ---------------------------------------------------------------- client

let nextSeq = (Date.now() & 0x7fffffff) >>> 0

/**
 * An rtnetlink socket bound to one network namespace. Requests on one socket run one after
 * another. Every method validates its input before anything is sent (throwing
 * `InvalidOptionsError`) and rejects with a {@link NetlinkError} that names the operation and
 * the errno.
 *
 * @example
 * ```ts
 * const holder = await spawn({ argv: ['/bin/sleep', 'infinity'], namespaces: ['net'] })
 * const nl = await Netlink.open({ netns: hostNetnsPid })
 * try {
 *   await nl.createVeth('veth0', 'eth0', { peerNetns: holder.pid })
 *   await nl.addAddress('veth0', '10.88.0.1/16')
 *   await nl.setUp('veth0')
 * } finally { nl.close() }
 * ```
 */
export class Netlink {
  #fd: number
  #queue: Promise<unknown> = Promise.resolve()
  #pending = 0
  /** A worker thread is receiving on the socket now. */
  #inFlight = false
  #closed = false

  private constructor(fd: number) {
    this.#fd = fd
  }

  /**
   * Opens a socket in a network namespace: `netns` is a pid (its `/proc/<pid>/ns/net`) or a
   * path (`/run/netns/x`); without one, the caller's own namespace.
   */
  static async open(options: { netns?: NetnsRef } = {}): Promise<Netlink> {
    if (options.netns === undefined) return new Netlink(Netlink.#openSocket(-1, 'open netlink socket'))
    const ns = checkNetns(options.netns, 'netns')
    const op = `open netlink socket in ${netnsPath(ns)}`
    return withNetnsFd(ns, op, (fd) => new Netlink(Netlink.#openSocket(fd, op)))
  }

  static #openSocket(nsFd: number, operation: string): number {
    try {
      return netlinkOpen(C.NETLINK_ROUTE, nsFd)
    } catch (err) {
      throw new NetlinkError(operation, (err as { errno?: number }).errno ?? 5, { cause: err })
    }
  }

  /** Closes the socket (after the requests in flight). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const fd = this.#fd
    if (this.#pending === 0) closeFd(fd)
    else void this.#queue.finally(() => closeFd(fd))
  }

  /** Sends one request; resolves with the replies' bodies (not the final ack), or rejects. */
  #request(type: number, flags: number, body: Buffer, operation: string): Promise<Buffer[]> {
    if (this.#closed) return Promise.reject(new NetlinkError(operation, 9 /* EBADF */))
    const seq = (nextSeq = (nextSeq + 1) >>> 0)
    const msg = encodeMessage(type, flags | C.NLM_F_REQUEST, seq, body)
    this.#pending++
    const run = async (): Promise<Buffer[]> => {
      let replies: Buffer[]
      this.#inFlight = true
      try {
        replies = await netlinkRequest(this.#fd, msg)
      } catch (err) {
        throw new NetlinkError(operation, (err as { errno?: number }).errno ?? 5, { cause: err })
      } finally {
        this.#inFlight = false
      }
      const out: Buffer[] = []
      for (const r of replies) {
        const h = parseHeader(r)
        if (h.type === C.NLMSG_DONE) {
          // a dump can end with an error carried in NLMSG_DONE
          const body = messageBody(r)
          const e = body.length >= 4 ? -body.readInt32LE(0) : 0
          if (e > 0) throw new NetlinkError(operation, e)
          break
        }
        const e = parseError(r)
        if (e) {
          if (e.errno !== 0) throw new NetlinkError(operation, e.errno, e.message ? { kernelMessage: e.message } : {})
          continue
        }
        out.push(messageBody(r))
      }
      return out
    }
    const p = this.#queue.then(run, run)
    this.#queue = p.catch(() => undefined).finally(() => this.#pending--)
    return p
  }

  /**
   * Makes a new network namespace with no process in it (only `lo`, down) and a socket inside
   * it. The namespace lives while `netnsFd` or the socket is open, or while a process is in it:
   * a process joins it through `/proc/self/fd/<netnsFd>` (spawn's `join.net`), then both may
   * be closed and it goes with its last process. No process is spawned to hold it.
   */
  static async openNewNetns(): Promise<{ netlink: Netlink; netnsFd: number; path: string }> {
    let r: { fd: number; netnsFd: number }
    try {
      r = await netlinkOpenNewNetns(C.NETLINK_ROUTE)
    } catch (err) {
      throw new NetlinkError('create a network namespace', (err as { errno?: number }).errno ?? 5, { cause: err })
    }
    return { netlink: new Netlink(r.fd), netnsFd: r.netnsFd, path: `/proc/self/fd/${r.netnsFd}` }
  }

  /**
   * Requests to send together: one datagram, run by the kernel in order, one wait for all the
   * acks. {@link NetlinkBatch.send} rejects with the first failure (each request is still
   * tried: a later one that depends on a failed one fails too).
   *
   * @example
   * ```ts
   * const b = nl.batch()
   * b.setLink('lo', { up: true })
   * b.addAddress({ index: 2 }, '10.88.0.2/16')
   * b.addRoute({ dst: 'default', gateway: '10.88.0.1', oif: 2 })
   * await b.send()
   * ```
   */
  batch(): NetlinkBatch {
    return new NetlinkBatch((reqs) => this.#send(reqs), (reqs) => this.#sendSync(reqs))
  }

  /** {@link openNewNetns} on the calling thread (it waits for the kernel: about a millisecond). */
  static openNewNetnsSync(): { netlink: Netlink; netnsFd: number; path: string } {
    let r: { fd: number; netnsFd: number }
    try {
      r = netlinkOpenNewNetnsSync(C.NETLINK_ROUTE)
    } catch (err) {
      throw new NetlinkError('create a network namespace', (err as { errno?: number }).errno ?? 5, { cause: err })
    }
    return { netlink: new Netlink(r.fd), netnsFd: r.netnsFd, path: `/proc/self/fd/${r.netnsFd}` }
  }

  /** Sends requests in one datagram; resolves once each is answered, with every reply's body per request. */
  #send(reqs: Req[]): Promise<Buffer[][]> {
    if (this.#closed) return Promise.reject(new NetlinkError(reqs[0]?.op ?? 'netlink', 9 /* EBADF */))
    const { msg, seqs } = encodeBatch(reqs)
    this.#pending++
    const run = async (): Promise<Buffer[][]> => {
      let replies: Buffer[]
      this.#inFlight = true
      try {
        replies = await netlinkRequest(this.#fd, msg)
      } catch (err) {
        throw new NetlinkError(reqs.map((r) => r.op).join(', '), (err as { errno?: number }).errno ?? 5, { cause: err })
      } finally {
        this.#inFlight = false
      }
      return batchReplies(reqs, seqs, replies)
    }
    const p = this.#queue.then(run, run)
    this.#queue = p.catch(() => undefined).finally(() => this.#pending--)
    return p
  }

  /**
   * {@link #send} on the calling thread; refused (EBUSY) while a worker thread waits for
   * replies on this socket (requests still queued behind it are overtaken).
   */
  #sendSync(reqs: Req[]): Buffer[][] {
    const op = reqs.map((r) => r.op).join(', ')
    if (this.#closed) throw new NetlinkError(op, 9 /* EBADF */)
    if (this.#inFlight) throw new NetlinkError(op, 16 /* EBUSY */)
    const { msg, seqs } = encodeBatch(reqs)
    let replies: Buffer[]
    try {
      replies = netlinkRequestSync(this.#fd, msg)
    } catch (err) {
      throw new NetlinkError(op, (err as { errno?: number }).errno ?? 5, { cause: err })
    }
    return batchReplies(reqs, seqs, replies)
  }

  #ack(type: number, flags: number, body: Buffer, operation: string): Promise<void> {
    return this.#request(type, flags | C.NLM_F_ACK, body, operation).then(() => undefined)
  }

  // -------------------------------------------------------------- links

  /** Every link of the namespace. */
  async links(): Promise<Link[]> {
    const bodies = await this.#request(C.RTM_GETLINK, C.NLM_F_DUMP, encodeIfInfo({}), 'list links')
    const raw = bodies.map(parseLink)
    const names = new Map(raw.map((l) => [l.index, l.name]))
    return raw.map(({ masterIndex, ...l }) => (masterIndex ? { ...l, master: names.get(masterIndex) ?? String(masterIndex) } : l))
  }

  /** One link by name, or undefined when there is none. */
  async link(name: string): Promise<Link | undefined> {
    checkName(name)
    try {
      const [body] = await this.#request(C.RTM_GETLINK, 0, encodeIfInfo({}, [strAttr(C.IFLA_IFNAME, name)]), `get link ${name}`)
      if (!body) return undefined
      const { masterIndex, ...l } = parseLink(body)
      if (!masterIndex) return l
      const [m] = await this.#request(C.RTM_GETLINK, 0, encodeIfInfo({ index: masterIndex }), `get link ${masterIndex}`)
      return { ...l, master: m ? parseLink(m).name : String(masterIndex) }
    } catch (err) {
      if (err instanceof NetlinkError && err.errnoCode === 'ENODEV') return undefined
      throw err
    }
  }

  /** The index of a link; ENODEV (naming `operation`) when it does not exist. */
  async #index(name: string, operation: string): Promise<number> {
    const [body] = await this.#request(C.RTM_GETLINK, 0, encodeIfInfo({}, [strAttr(C.IFLA_IFNAME, name)]), operation)
    if (!body) throw new NetlinkError(operation, 19 /* ENODEV */)
    return parseIfInfo(body).msg.index
  }

  /**
   * Creates a veth pair `name` ↔ `peer`. With `peerNetns` the peer is created directly in that
   * namespace (a pid or a path). `mtu` applies to both ends.
   */
  async createVeth(name: string, peer: string, options: { peerNetns?: NetnsRef; mtu?: number } = {}): Promise<void> {
    checkName(name)
    checkName(peer, 'peer')
    const mtu = options.mtu === undefined ? [] : [u32Attr(C.IFLA_MTU, checkMtu(options.mtu))]
    const ns = options.peerNetns === undefined ? undefined : checkNetns(options.peerNetns, 'peerNetns')
    const op = `create veth ${name} peer ${peer}${ns === undefined ? '' : ` in ${netnsPath(ns)}`}`
    const send = (nsAttr: Attr[]) => {
      const peerInfo = Buffer.concat([encodeIfInfo({}, [strAttr(C.IFLA_IFNAME, peer), ...mtu, ...nsAttr])])
      const body = encodeIfInfo({}, [
        strAttr(C.IFLA_IFNAME, name),
        ...mtu,
        nestAttr(C.IFLA_LINKINFO, [strAttr(C.IFLA_INFO_KIND, 'veth'), nestAttr(C.IFLA_INFO_DATA, [bytesAttr(C.VETH_INFO_PEER, peerInfo)])]),
      ])
      return this.#ack(C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, body, op)
    }
    if (ns === undefined) return send([])
    if (typeof ns === 'number') return send([u32Attr(C.IFLA_NET_NS_PID, ns)])
    return withNetnsFd(ns, op, (fd) => send([u32Attr(C.IFLA_NET_NS_FD, fd)]))
  }

  /** Creates a bridge (down, no ports). */
  async createBridge(name: string, options: { mtu?: number } = {}): Promise<void> {
    checkName(name)
    const mtu = options.mtu === undefined ? [] : [u32Attr(C.IFLA_MTU, checkMtu(options.mtu))]
    const body = encodeIfInfo({}, [strAttr(C.IFLA_IFNAME, name), ...mtu, nestAttr(C.IFLA_LINKINFO, [strAttr(C.IFLA_INFO_KIND, 'bridge')])])
    await this.#ack(C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, body, `create bridge ${name}`)
  }

  /** Makes `name` a port of `bridge`, or (with null) of no bridge. */
  async setMaster(name: string, bridge: string | null): Promise<void> {
    checkName(name)
    if (bridge !== null) checkName(bridge, 'bridge')
    const op = bridge === null ? `remove ${name} from its bridge` : `attach ${name} to ${bridge}`
    const master = bridge === null ? 0 : await this.#index(bridge, op)
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index }, [u32Attr(C.IFLA_MASTER, master)]), op)
  }

  /** Sets a link administratively up (default) or down. */
  async setUp(name: string, up = true): Promise<void> {
    checkName(name)
    const op = `set ${name} ${up ? 'up' : 'down'}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index, flags: up ? C.IFF_UP : 0, change: C.IFF_UP }), op)
  }

  async setMtu(name: string, mtu: number): Promise<void> {
    checkName(name)
    checkMtu(mtu)
    const op = `set mtu of ${name} to ${mtu}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index }, [u32Attr(C.IFLA_MTU, mtu)]), op)
  }

  /** Renames a link. Kernels before 6.2 refuse to rename a link that is up (EBUSY): set it down first there. */
  async rename(name: string, newName: string): Promise<void> {
    checkName(name)
    checkName(newName, 'newName')
    const op = `rename ${name} to ${newName}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index }, [strAttr(C.IFLA_IFNAME, newName)]), op)
  }

  /** Moves a link into another network namespace (a pid or a path); it arrives down. */
  async moveToNetns(name: string, netns: NetnsRef): Promise<void> {
    checkName(name)
    const ns = checkNetns(netns, 'netns')
    const op = `move ${name} to ${netnsPath(ns)}`
    const index = await this.#index(name, op)
    if (typeof ns === 'number') {
      await this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index }, [u32Attr(C.IFLA_NET_NS_PID, ns)]), op)
      return
    }
    await withNetnsFd(ns, op, (fd) => this.#ack(C.RTM_NEWLINK, 0, encodeIfInfo({ index }, [u32Attr(C.IFLA_NET_NS_FD, fd)]), op))
  }

  /** Deletes a link (a veth takes its peer with it). */
  async deleteLink(name: string): Promise<void> {
    checkName(name)
    const op = `delete link ${name}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_DELLINK, 0, encodeIfInfo({ index }), op)
  }

  // -------------------------------------------------------------- addresses

  /**
   * Adds an address: `10.88.0.1/16` or `fd00::1/64` (no prefix: /32 or /128). With
   * `nodad`, an IPv6 address is usable at once, without duplicate address detection.
   */
  async addAddress(name: string, cidr: string, options: { nodad?: boolean } = {}): Promise<void> {
    checkName(name)
    const c = checkCidr(cidr, 'cidr')
    const op = `add address ${c.address}/${c.prefix} to ${name}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, addrBody(c, index, options.nodad ? C.IFA_F_NODAD : 0), op)
  }

  async deleteAddress(name: string, cidr: string): Promise<void> {
    checkName(name)
    const c = checkCidr(cidr, 'cidr')
    const op = `delete address ${c.address}/${c.prefix} from ${name}`
    const index = await this.#index(name, op)
    await this.#ack(C.RTM_DELADDR, 0, addrBody(c, index, 0), op)
  }

  /** The addresses of one link, or of every link. */
  async addresses(name?: string): Promise<AddressInfo[]> {
    if (name !== undefined) checkName(name)
    const links = new Map((await this.links()).map((l) => [l.index, l.name]))
    if (name !== undefined && ![...links.values()].includes(name)) throw new NetlinkError(`list addresses of ${name}`, 19 /* ENODEV */)
    const bodies = await this.#request(C.RTM_GETADDR, C.NLM_F_DUMP, encodeIfAddr({ family: C.AF_UNSPEC, prefixlen: 0, flags: 0, scope: 0, index: 0 }), 'list addresses')
    const out: AddressInfo[] = []
    for (const b of bodies) {
      const { msg, attrs } = parseIfAddr(b)
      if (msg.family !== C.AF_INET && msg.family !== C.AF_INET6) continue
      const bytes = attrs.get(C.IFA_LOCAL) ?? attrs.get(C.IFA_ADDRESS)
      if (!bytes) continue
      const link = links.get(msg.index) ?? String(msg.index)
      if (name !== undefined && link !== name) continue
      out.push({ link, cidr: `${formatIp(bytes)}/${msg.prefixlen}`, family: msg.family === C.AF_INET ? 4 : 6 })
    }
    return out
  }

  // -------------------------------------------------------------- routes

  /** Adds a route to the main table: `{ dst: 'default', gateway: '10.88.0.1' }`, `{ dst: '10.1.0.0/16', dev: 'eth0' }`. */
  async addRoute(route: RouteSpec): Promise<void> {
    const r = await this.#routeMsg(route, 'add')
    await this.#ack(C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_EXCL, r.body, r.op)
  }

  async deleteRoute(route: RouteSpec): Promise<void> {
    const r = await this.#routeMsg(route, 'delete')
    await this.#ack(C.RTM_DELROUTE, 0, r.body, r.op)
  }

  async #routeMsg(route: RouteSpec, verb: 'add' | 'delete'): Promise<{ body: Buffer; op: string }> {
    // validated first, so that a bad route sends nothing
    const probe = routeMessage(route, verb, undefined)
    if (route.dev === undefined) return probe
    return routeMessage(route, verb, await this.#index(route.dev, probe.op))
  }

  /** The unicast routes of the main table (both families unless one is asked for). */
  async routes(family?: 4 | 6): Promise<RouteInfo[]> {
    if (family !== undefined && family !== 4 && family !== 6) invalid('family', 'must be 4 or 6')
    const links = new Map((await this.links()).map((l) => [l.index, l.name]))
    const af = family === 4 ? C.AF_INET : family === 6 ? C.AF_INET6 : C.AF_UNSPEC
    const bodies = await this.#request(C.RTM_GETROUTE, C.NLM_F_DUMP, encodeRt({ family: af }), 'list routes')
    const out: RouteInfo[] = []
    for (const b of bodies) {
      const { msg, attrs } = parseRt(b)
      if (msg.family !== C.AF_INET && msg.family !== C.AF_INET6) continue
      const table = attrU32(attrs.get(C.RTA_TABLE)) ?? msg.table
      if (table !== C.RT_TABLE_MAIN || msg.type !== C.RTN_UNICAST) continue
      const dstBytes = attrs.get(C.RTA_DST)
      const r: RouteInfo = {
        dst: dstBytes && msg.dstLen > 0 ? `${formatIp(dstBytes)}/${msg.dstLen}` : 'default',
        family: msg.family === C.AF_INET ? 4 : 6,
      }
      const gw = attrs.get(C.RTA_GATEWAY)
      if (gw) r.gateway = formatIp(gw)
      const oif = attrU32(attrs.get(C.RTA_OIF))
      if (oif !== undefined) r.dev = links.get(oif) ?? String(oif)
      out.push(r)
    }
    return out
  }
}

/** A route request; `oif` is the output link's index (`route.dev` names it in the text). */
function routeMessage(route: RouteSpec & { oif?: number }, verb: 'add' | 'delete', oif: number | undefined): { body: Buffer; op: string } {
  if (typeof route !== 'object' || route === null) invalid('route', 'must be an object')
  let dst: Cidr | undefined
  if (route.dst !== 'default') dst = checkCidr(route.dst, 'route.dst')
  const gw = route.gateway === undefined ? undefined : checkCidr(route.gateway, 'route.gateway')
  if (gw && gw.prefix !== (gw.family === 4 ? 32 : 128)) invalid('route.gateway', 'must be an address, not a CIDR')
  if (route.dev !== undefined) checkName(route.dev, 'route.dev')
  if (route.family !== undefined && route.family !== 4 && route.family !== 6) invalid('route.family', 'must be 4 or 6')
  const family = dst?.family ?? gw?.family ?? route.family ?? 4
  if ((dst && dst.family !== family) || (gw && gw.family !== family) || (route.family !== undefined && route.family !== family))
    invalid('route', 'dst, gateway and family must be of one address family')
  if (!gw && route.dev === undefined && route.oif === undefined) invalid('route', 'needs a gateway or a dev')
  const dstText = dst ? `${formatIp(maskBytes(dst.bytes, dst.prefix))}/${dst.prefix}` : 'default'
  const devText = route.dev ?? (route.oif !== undefined ? `#${route.oif}` : undefined)
  const op = `${verb} route ${dstText}${gw ? ` via ${gw.address}` : ''}${devText !== undefined ? ` dev ${devText}` : ''}`
  const attrs: Attr[] = [u32Attr(C.RTA_TABLE, C.RT_TABLE_MAIN)]
  if (dst && dst.prefix > 0) attrs.push(bytesAttr(C.RTA_DST, maskBytes(dst.bytes, dst.prefix)))
  if (gw) attrs.push(bytesAttr(C.RTA_GATEWAY, gw.bytes))
  if (oif !== undefined) attrs.push(u32Attr(C.RTA_OIF, oif))
  const add = verb === 'add'
  const body = encodeRt(
    {
      family: family === 4 ? C.AF_INET : C.AF_INET6,
      dstLen: dst?.prefix ?? 0,
      table: C.RT_TABLE_MAIN,
      protocol: add ? C.RTPROT_BOOT : 0,
      scope: add ? (gw ? C.RT_SCOPE_UNIVERSE : C.RT_SCOPE_LINK) : C.RT_SCOPE_NOWHERE,
      type: add ? C.RTN_UNICAST : 0,
    },
    attrs,
  )
  return { body, op }
}

function addrBody(c: Cidr, index: number, flags: number): Buffer {
  const attrs: Attr[] = [bytesAttr(C.IFA_LOCAL, c.bytes), bytesAttr(C.IFA_ADDRESS, c.bytes)]
  if (flags) attrs.push(u32Attr(C.IFA_FLAGS, flags))
  return encodeIfAddr({ family: c.family === 4 ? C.AF_INET : C.AF_INET6, prefixlen: c.prefix, flags, scope: 0, index }, attrs)
}

function parseLink(body: Buffer): Link & { masterIndex?: number } {
  const { msg, attrs } = parseIfInfo(body)
  const link: Link & { masterIndex?: number } = {
    index: msg.index,
    name: attrString(attrs.get(C.IFLA_IFNAME)) ?? String(msg.index),
    mtu: attrU32(attrs.get(C.IFLA_MTU)) ?? 0,
    up: (msg.flags & C.IFF_UP) !== 0,
  }
  const mac = attrs.get(C.IFLA_ADDRESS)
  if (mac && mac.length > 0 && !(msg.flags & C.IFF_LOOPBACK)) link.mac = formatMac(mac)
  const info = attrs.get(C.IFLA_LINKINFO)
  if (info) {
    const kind = attrString(parseAttrs(info).get(C.IFLA_INFO_KIND))
    if (kind) link.kind = kind
  }
  const master = attrU32(attrs.get(C.IFLA_MASTER))
  if (master) link.masterIndex = master
  return link
}



interface Req {
  type: number
  flags: number
  body: Buffer
  op: string
}

/** Requests back to back, each padded to 4 bytes, with fresh sequence numbers. */
function encodeBatch(reqs: Req[]): { msg: Buffer; seqs: number[] } {
  const seqs = reqs.map(() => (nextSeq = (nextSeq + 1) >>> 0))
  const parts: Buffer[] = []
  reqs.forEach((r, i) => {
    const m = encodeMessage(r.type, r.flags | C.NLM_F_REQUEST, seqs[i]!, r.body)
    parts.push(m)
    const pad = ((m.length + 3) & ~3) - m.length
    if (pad) parts.push(Buffer.alloc(pad))
  })
  return { msg: Buffer.concat(parts), seqs }
}

/** The replies' bodies per request; throws the first failure (naming its request). */
function batchReplies(reqs: Req[], seqs: number[], replies: Buffer[]): Buffer[][] {
  const out: Buffer[][] = reqs.map(() => [])
  let first: NetlinkError | undefined
  for (const r of replies) {
    const h = parseHeader(r)
    const i = seqs.indexOf(h.seq)
    if (i < 0) continue
    const op = reqs[i]!.op
    if (h.type === C.NLMSG_DONE) {
      // a dump can end with an error carried in NLMSG_DONE
      const body = messageBody(r)
      const e = body.length >= 4 ? -body.readInt32LE(0) : 0
      if (e > 0) first ??= new NetlinkError(op, e)
      continue
    }
    const e = parseError(r)
    if (e) {
      if (e.errno !== 0) first ??= new NetlinkError(op, e.errno, e.message ? { kernelMessage: e.message } : {})
      continue
    }
    out[i]!.push(messageBody(r))
  }
  if (first) throw first
  return out
}

/**
 * Requests collected by {@link Netlink.batch} and sent in one datagram. Every request needs
 * what the kernel can resolve by itself: links by name where rtnetlink looks names up (link
 * settings, deletion), by index for addresses and routes (and a veth's requested `index`
 * makes a link made earlier in the same batch nameable). Input is checked when a request is
 * added (`InvalidOptionsError`).
 */
export class NetlinkBatch {
  readonly #reqs: Req[] = []
  readonly #fds: number[] = []
  #sent = false

  constructor(
    private readonly sendFn: (reqs: Req[]) => Promise<Buffer[][]>,
    private readonly sendSyncFn: (reqs: Req[]) => Buffer[][],
  ) {}

  /** How many requests are queued. */
  get size(): number {
    return this.#reqs.length
  }

  /**
   * A veth pair; the first end optionally up and in a bridge, the peer optionally in another
   * netns. The peer cannot be set up in the same request (the kernel refuses, ENOTCONN): a
   * `setLink` by name does it.
   */
  createVeth(v: VethSpec): this {
    if (typeof v !== 'object' || v === null || typeof v.peer !== 'object' || v.peer === null) invalid('veth', 'must be { name, peer: { name } }')
    checkName(v.name)
    checkName(v.peer.name, 'peer.name')
    const index = v.index === undefined ? 0 : checkIndex(v.index, 'index')
    const mtu = v.mtu === undefined ? [] : [u32Attr(C.IFLA_MTU, checkMtu(v.mtu))]
    const master = v.master === undefined ? [] : [u32Attr(C.IFLA_MASTER, checkIndex(v.master, 'master'))]
    const mac = v.mac === undefined ? [] : [bytesAttr(C.IFLA_ADDRESS, checkMac(v.mac))]
    const nsAttr: Attr[] = []
    let where = ''
    if (v.peer.netns !== undefined) {
      const ns = checkNetns(v.peer.netns, 'peer.netns')
      where = ` in ${netnsPath(ns)}`
      if (typeof ns === 'number') nsAttr.push(u32Attr(C.IFLA_NET_NS_PID, ns))
      else {
        let fd: number
        try {
          fd = fs.openSync(ns, 'r')
        } catch (err) {
          const e = err as NodeJS.ErrnoException
          throw new NetlinkError(`create veth ${v.name} peer ${v.peer.name}${where}: open ${ns}`, e.errno ? Math.abs(e.errno) : 2, { cause: err })
        }
        this.#fds.push(fd)
        nsAttr.push(u32Attr(C.IFLA_NET_NS_FD, fd))
      }
    }
    const up = (on: boolean | undefined) => (on ? { flags: C.IFF_UP, change: C.IFF_UP } : {})
    const peerInfo = encodeIfInfo({}, [strAttr(C.IFLA_IFNAME, v.peer.name), ...mtu, ...nsAttr])
    const body = encodeIfInfo({ index, ...up(v.up) }, [
      strAttr(C.IFLA_IFNAME, v.name),
      ...mtu,
      ...mac,
      ...master,
      nestAttr(C.IFLA_LINKINFO, [strAttr(C.IFLA_INFO_KIND, 'veth'), nestAttr(C.IFLA_INFO_DATA, [bytesAttr(C.VETH_INFO_PEER, peerInfo)])]),
    ])
    return this.#add(C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, body, `create veth ${v.name} peer ${v.peer.name}${where}`)
  }

  /** Changes a link: up/down, bridge (by index; 0 for none), MTU. */
  setLink(link: LinkRef, s: LinkSettings): this {
    const l = checkLinkRef(link)
    if (typeof s !== 'object' || s === null) invalid('settings', 'must be an object')
    const attrs: Attr[] = l.name !== undefined ? [strAttr(C.IFLA_IFNAME, l.name)] : []
    const what: string[] = []
    if (s.mac !== undefined) {
      attrs.push(bytesAttr(C.IFLA_ADDRESS, checkMac(s.mac)))
      what.push(`address ${s.mac}`)
    }
    if (s.mtu !== undefined) {
      attrs.push(u32Attr(C.IFLA_MTU, checkMtu(s.mtu)))
      what.push(`mtu ${s.mtu}`)
    }
    if (s.master !== undefined) {
      attrs.push(u32Attr(C.IFLA_MASTER, s.master === 0 ? 0 : checkIndex(s.master, 'master')))
      what.push(s.master === 0 ? 'nomaster' : `master #${s.master}`)
    }
    const flags = s.up === undefined ? {} : { flags: s.up ? C.IFF_UP : 0, change: C.IFF_UP }
    if (s.up !== undefined) what.push(s.up ? 'up' : 'down')
    return this.#add(C.RTM_NEWLINK, 0, encodeIfInfo({ index: l.index, ...flags }, attrs), `set ${linkText(l)} ${what.join(' ')}`.trimEnd())
  }

  /** Deletes a link (a veth takes its peer with it). */
  deleteLink(link: LinkRef): this {
    const l = checkLinkRef(link)
    const attrs: Attr[] = l.name !== undefined ? [strAttr(C.IFLA_IFNAME, l.name)] : []
    return this.#add(C.RTM_DELLINK, 0, encodeIfInfo({ index: l.index }, attrs), `delete link ${linkText(l)}`)
  }

  /** Adds an address to a link given by index. */
  addAddress(link: { index: number }, cidr: string, options: { nodad?: boolean } = {}): this {
    const index = checkIndex(link?.index, 'link.index')
    const c = checkCidr(cidr, 'cidr')
    return this.#add(C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, addrBody(c, index, options.nodad ? C.IFA_F_NODAD : 0), `add address ${c.address}/${c.prefix} to #${index}`)
  }

  /** Adds a route to the main table; the output link by index (`oif`). */
  addRoute(route: Omit<RouteSpec, 'dev'> & { oif?: number }): this {
    const r = routeMessage(route, 'add', route?.oif === undefined ? undefined : checkIndex(route.oif, 'route.oif'))
    return this.#add(C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_EXCL, r.body, r.op)
  }

  /** Sends the requests (once); rejects with the first failure. */
  async send(): Promise<void> {
    if (this.#sent) throw new InvalidOptionsError('batch', 'was sent already')
    this.#sent = true
    try {
      if (this.#reqs.length) await this.sendFn(this.#reqs)
    } finally {
      for (const fd of this.#fds.splice(0)) fs.closeSync(fd)
    }
  }

  /**
   * {@link send} on the calling thread: no worker-thread round trip (rtnetlink does the work in
   * the sender's context), for short requests on a socket with nothing else in flight (EBUSY
   * otherwise). The thread waits as long as the kernel does.
   */
  sendSync(): void {
    if (this.#sent) throw new InvalidOptionsError('batch', 'was sent already')
    this.#sent = true
    try {
      if (this.#reqs.length) this.sendSyncFn(this.#reqs)
    } finally {
      for (const fd of this.#fds.splice(0)) fs.closeSync(fd)
    }
  }

  #add(type: number, flags: number, body: Buffer, op: string): this {
    if (this.#sent) throw new InvalidOptionsError('batch', 'was sent already')
    this.#reqs.push({ type, flags: flags | C.NLM_F_ACK, body, op })
    return this
  }
}
