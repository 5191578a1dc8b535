/**
 * Published ports through a userland proxy: one small Node process per container, started
 * in the host netns (joined, so a test's "host" netns works as the real one), listening on
 * `hostIp:hostPort` and relaying TCP connections and UDP datagrams to the container's
 * address. It dies with its container (killed on exit/delete) or with us (PDEATHSIG).
 */
import { isIP } from 'node:net'
import { readText, spawn, type Child } from '@ctr/namespaces'
import { RuntimeError } from '../errors.js'
import type { NetnsRef } from './netlink.js'

export interface PublishedPort {
  hostPort: number
  containerPort: number
  protocol: 'tcp' | 'udp'
  /**
   * The host address to listen on, IPv4 or IPv6. Without one, every address of both families
   * (as Docker's `-p 8080:80` does): one dual-stack socket on `::`, or `0.0.0.0` alone where the
   * host has no IPv6.
   */
  hostIp?: string
}

const PROXY_SOURCE = String.raw`
const net = require('net'), dgram = require('dgram')
const { target, ports } = JSON.parse(process.argv[1])
let pending = ports.length
const ready = () => { if (--pending === 0) process.stdout.write('ready\n') }
const where = (ip, p) => (ip.includes(':') ? '[' + ip + ']' : ip) + ':' + p.hostPort + '/' + p.protocol
const fail = (ip, p, e) => { process.stderr.write(where(ip, p) + ': ' + e.message + '\n'); process.exit(1) }
const noIpv6 = (e) => e.code === 'EAFNOSUPPORT' || e.code === 'EADDRNOTAVAIL' || e.code === 'EPROTONOSUPPORT'
// An address given is that address only. None is every address: one dual-stack socket on ::
// (IPv4 arrives as ::ffff:a.b.c.d), or 0.0.0.0 where the host has no IPv6 at all.
function listen(p, relay) {
  if (p.hostIp) return relay(p, p.hostIp, (e) => fail(p.hostIp, p, e))
  relay(p, '::', (e) => (noIpv6(e) ? relay(p, '0.0.0.0', (e4) => fail('0.0.0.0', p, e4)) : fail('::', p, e)))
}
for (const p of ports) listen(p, p.protocol === 'tcp' ? relayTcp : relayUdp)

function relayTcp(p, ip, onError) {
  const srv = net.createServer((c) => {
    const u = net.connect(p.containerPort, target)
    const end = () => { c.destroy(); u.destroy() }
    c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end)
    c.pipe(u); u.pipe(c)
  })
  srv.once('error', onError)
  // An IPv6 address given takes IPv6 only (an explicit :: too); none is dual-stack.
  srv.listen({ port: p.hostPort, host: ip, ipv6Only: Boolean(p.hostIp) && ip.includes(':') }, ready)
}

function relayUdp(p, ip, onError) {
  const s = dgram.createSocket(ip.includes(':') ? { type: 'udp6', ipv6Only: Boolean(p.hostIp) } : 'udp4')
  const peers = new Map()
  s.once('error', onError)
  s.on('message', (msg, from) => {
    const key = from.address + ':' + from.port
    let u = peers.get(key)
    if (!u) {
      u = { sock: dgram.createSocket('udp4'), timer: null }
      u.sock.on('message', (reply) => s.send(reply, from.port, from.address))
      u.sock.on('error', () => {})
      peers.set(key, u)
    }
    clearTimeout(u.timer)
    u.timer = setTimeout(() => { u.sock.close(); peers.delete(key) }, 30000)
    u.sock.send(msg, p.containerPort, target)
  })
  s.bind(p.hostPort, ip, ready)
}
`

/** Starts the proxy and resolves once every port listens; rejects with the proxy's error. */
export async function startProxy(netns: NetnsRef | undefined, target: string, ports: PublishedPort[]): Promise<Child> {
  const spec = JSON.stringify({ target, ports })
  const child = await spawn({
    argv: [process.execPath, '-e', PROXY_SOURCE, spec],
    env: {},
    ...(netns !== undefined ? { join: { net: netns } } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const ready = await new Promise<boolean>((resolve) => {
    let buf = ''
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString()
      if (buf.includes('ready\n')) resolve(true)
    })
    void child.exited.then(() => resolve(false))
  })
  if (!ready) {
    const err = await readText(child.stderr).catch(() => '')
    throw new RuntimeError('ERR_RUNTIME_START', `publish ports: ${err.trim() || 'the proxy exited'}`)
  }
  child.stdout!.destroy()
  child.stderr!.destroy()
  return child
}

/**
 * Parses Docker's `-p [hostIp:]hostPort:containerPort[/tcp|udp]`, an IPv6 host address in
 * brackets (`[::1]:8080:80`).
 */
export function parsePublish(spec: string): PublishedPort {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+|\[[0-9A-Fa-f:.]+\]):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec)
  const bracketed = m?.[1]?.startsWith('[')
  const hostIp = bracketed ? m![1]!.slice(1, -1) : m?.[1]
  // An IPv6 address in brackets, an IPv4 one without.
  if (!m || (hostIp !== undefined && isIP(hostIp) !== (bracketed ? 6 : 4))) {
    throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `publish: "${spec}" is not [hostIp:]hostPort:containerPort[/tcp|udp]`, { field: 'publish' })
  }
  const hostPort = Number(m[2])
  const containerPort = Number(m[3])
  for (const p of [hostPort, containerPort]) {
    if (p < 1 || p > 65535) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `publish: port ${p} out of range`, { field: 'publish' })
  }
  return { hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp', ...(hostIp ? { hostIp } : {}) }
}
