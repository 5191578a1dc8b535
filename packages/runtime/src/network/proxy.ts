/**
 * Published ports through a userland proxy: one small Node process per container, started
 * in the host netns (joined, so a test's "host" netns works as the real one), listening on
 * `hostIp:hostPort` and relaying TCP connections and UDP datagrams to the container's
 * address. It dies with its container (killed on exit/delete) or with us (PDEATHSIG).
 */
import { readText, spawn, type Child } from '@ctr/namespaces'
import { RuntimeError } from '../errors.js'
import type { NetnsRef } from './netlink.js'

export interface PublishedPort {
  hostPort: number
  containerPort: number
  protocol: 'tcp' | 'udp'
  /** Default 0.0.0.0. */
  hostIp?: string
}

const PROXY_SOURCE = String.raw`
const net = require('net'), dgram = require('dgram')
const { target, ports } = JSON.parse(process.argv[1])
let pending = ports.length
const ready = () => { if (--pending === 0) process.stdout.write('ready\n') }
const fail = (p, e) => { process.stderr.write(p.hostIp + ':' + p.hostPort + '/' + p.protocol + ': ' + e.message + '\n'); process.exit(1) }
for (const p of ports) {
  if (p.protocol === 'tcp') {
    const srv = net.createServer((c) => {
      const u = net.connect(p.containerPort, target)
      const end = () => { c.destroy(); u.destroy() }
      c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end)
      c.pipe(u); u.pipe(c)
    })
    srv.on('error', (e) => fail(p, e))
    srv.listen(p.hostPort, p.hostIp, ready)
  } else {
    const s = dgram.createSocket('udp4')
    const peers = new Map()
    s.on('error', (e) => fail(p, e))
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
    s.bind(p.hostPort, p.hostIp, ready)
  }
}
`

/** Starts the proxy and resolves once every port listens; rejects with the proxy's error. */
export async function startProxy(netns: NetnsRef | undefined, target: string, ports: PublishedPort[]): Promise<Child> {
  const spec = JSON.stringify({ target, ports: ports.map((p) => ({ ...p, hostIp: p.hostIp ?? '0.0.0.0' })) })
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

/** Parses Docker's `-p [hostIp:]hostPort:containerPort[/tcp|udp]`. */
export function parsePublish(spec: string): PublishedPort {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(spec)
  if (!m) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `publish: "${spec}" is not [hostIp:]hostPort:containerPort[/tcp|udp]`, { field: 'publish' })
  const hostPort = Number(m[2])
  const containerPort = Number(m[3])
  for (const p of [hostPort, containerPort]) {
    if (p < 1 || p > 65535) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `publish: port ${p} out of range`, { field: 'publish' })
  }
  return { hostPort, containerPort, protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp', ...(m[1] ? { hostIp: m[1] } : {}) }
}
