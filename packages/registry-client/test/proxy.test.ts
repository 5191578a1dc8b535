/**
 * Proxies from the environment: plain HTTP goes to `HTTP_PROXY` as absolute-URI requests,
 * HTTPS through a `CONNECT` tunnel to `HTTPS_PROXY` (TLS end to end: the proxy sees no
 * request), and `NO_PROXY` hosts go direct. The proxy is a tiny forward proxy on 127.0.0.1
 * that records what it was asked.
 */
import { promises as fs } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { pushFixtures, startRegistry, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient, RegistryError } from '../src/index.js'
import { proxyFor, proxySettings } from '../src/agents.js'

interface ForwardProxy {
  url: string
  /** Every request: `GET http://host/path` (absolute URI) or `CONNECT host:port`. */
  requests: { method: string; target: string; proxyAuthorization?: string }[]
  stop(): Promise<void>
}

/** A forward proxy: absolute-URI requests for plain HTTP, CONNECT tunnels for HTTPS. */
async function startForwardProxy(options: { refuseConnect?: number } = {}): Promise<ForwardProxy> {
  const requests: ForwardProxy['requests'] = []
  const sockets = new Set<net.Socket>()
  const upstreamAgent = new http.Agent({ keepAlive: true })
  const record = (req: http.IncomingMessage) =>
    requests.push({
      method: req.method ?? '',
      target: req.url ?? '',
      ...(req.headers['proxy-authorization'] ? { proxyAuthorization: req.headers['proxy-authorization'] } : {}),
    })
  const server = http.createServer((req, res) => {
    record(req)
    let target: URL
    try {
      target = new URL(req.url ?? '')
    } catch {
      res.writeHead(400).end('absolute URI expected')
      return
    }
    const { 'proxy-authorization': _auth, 'proxy-connection': _pc, ...headers } = req.headers
    const upstream = http.request(target, { method: req.method, headers, agent: upstreamAgent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    record(req)
    client.on('error', () => undefined)
    if (options.refuseConnect) {
      client.end(`HTTP/1.1 ${options.refuseConnect} Refused\r\n\r\n`)
      return
    }
    const target = new URL(`http://${req.url}`)
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
  })
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      for (const s of sockets) s.destroy()
      upstreamAgent.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'] as const
const savedEnv = Object.fromEntries(PROXY_VARS.map((k) => [k, process.env[k]]))

/** Sets exactly these proxy variables (the others unset) for the next clients made. */
function proxyEnv(vars: Partial<Record<(typeof PROXY_VARS)[number], string>>): void {
  for (const k of PROXY_VARS) delete process.env[k]
  Object.assign(process.env, vars)
}

let plain: Registry
let secure: Registry
let pushedPlain: PushedFixtures
let pushedSecure: PushedFixtures
let proxy: ForwardProxy
let tmp: string

beforeAll(async () => {
  plain = await startRegistry()
  secure = await startRegistry({ tls: true })
  pushedPlain = await pushFixtures(plain, undefined, ['busybox'])
  pushedSecure = await pushFixtures(secure, undefined, ['busybox'])
  proxy = await startForwardProxy()
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-proxy-'))
})

afterEach(() => {
  proxyEnv({})
  Object.assign(process.env, Object.fromEntries(Object.entries(savedEnv).filter(([, v]) => v !== undefined)))
  proxy.requests.length = 0
})

afterAll(async () => {
  await proxy?.stop()
  await plain?.stop()
  await secure?.stop()
  await pushedPlain?.fixtures.close()
  await pushedSecure?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

async function pullPlain(): Promise<void> {
  const client = new RegistryClient({ insecure: [plain.host], dockerConfig: false })
  try {
    const img = await client.pull(pushedPlain.images.busybox.reference, { into: await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-'))) })
    expect(img.digest).toBe(pushedPlain.images.busybox.digest)
  } finally {
    await client.close()
  }
}

describe('plain HTTP through HTTP_PROXY', () => {
  it('sends every request to the proxy, as an absolute URI', async () => {
    proxyEnv({ HTTP_PROXY: proxy.url })
    await pullPlain()
    const img = pushedPlain.images.busybox
    const base = `http://${plain.host}/v2/${img.repository}`
    const targets = proxy.requests.map((r) => `${r.method} ${r.target}`)
    expect(targets).toContain(`GET ${base}/manifests/${img.tag}`)
    for (const layer of img.layers!) expect(targets).toContain(`GET ${base}/blobs/${layer.digest}`)
    expect(proxy.requests.every((r) => r.method === 'GET' && r.target.startsWith(`http://${plain.host}/`))).toBe(true)
  })

  it.each([
    ['the host', () => '127.0.0.1'],
    ['host:port', () => plain.host],
    ['a list with the host', () => `registry.example, .example.org ,${plain.host}`],
    ['*', () => '*'],
    ['* in a list', () => 'registry.example,*'],
  ])('NO_PROXY with %s goes direct', async (_name, noProxy) => {
    proxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: noProxy() })
    await pullPlain()
    expect(proxy.requests).toEqual([])
  })

  it('NO_PROXY for another port of the host still goes through the proxy', async () => {
    proxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1:1' })
    await pullPlain()
    expect(proxy.requests.length).toBeGreaterThan(0)
  })

  it('lower-case variables win over upper-case ones', async () => {
    proxyEnv({ http_proxy: proxy.url, HTTP_PROXY: 'http://127.0.0.1:1', no_proxy: 'registry.example', NO_PROXY: '*' })
    await pullPlain()
    expect(proxy.requests.length).toBeGreaterThan(0)
  })
})

describe('HTTPS through HTTPS_PROXY', () => {
  it('tunnels with CONNECT (with the proxy credentials from the URL): the proxy sees no request', async () => {
    const withCreds = new URL(proxy.url)
    withCreds.username = 'proxy-user'
    withCreds.password = 'p@ss word'
    proxyEnv({ HTTPS_PROXY: withCreds.toString() })
    const client = new RegistryClient({ ca: secure.caPem!, dockerConfig: false })
    try {
      const img = await client.pull(pushedSecure.images.busybox.reference, { into: await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-'))) })
      expect(img.digest).toBe(pushedSecure.images.busybox.digest)
    } finally {
      await client.close()
    }
    expect(proxy.requests.length).toBeGreaterThan(0)
    for (const r of proxy.requests) {
      expect(r.method).toBe('CONNECT')
      expect(r.target).toBe(secure.host)
      expect(r.proxyAuthorization).toBe(`Basic ${Buffer.from('proxy-user:p@ss word').toString('base64')}`)
    }
  })

  it('falls back to HTTP_PROXY when HTTPS_PROXY is unset', async () => {
    proxyEnv({ HTTP_PROXY: proxy.url })
    const client = new RegistryClient({ ca: secure.caPem!, dockerConfig: false })
    try {
      await client.resolve(pushedSecure.images.busybox.reference)
    } finally {
      await client.close()
    }
    expect(proxy.requests.map((r) => `${r.method} ${r.target}`)).toContain(`CONNECT ${secure.host}`)
  })

  it('a proxy that refuses the tunnel: ERR_REGISTRY_UNAVAILABLE naming the proxy and its answer', async () => {
    const refusing = await startForwardProxy({ refuseConnect: 407 })
    proxyEnv({ HTTPS_PROXY: refusing.url })
    const client = new RegistryClient({ ca: secure.caPem!, dockerConfig: false })
    try {
      const err = await client.resolve(pushedSecure.images.busybox.reference).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect((err as RegistryError).code).toBe('ERR_REGISTRY_UNAVAILABLE')
      expect((err as Error).message).toMatch(/proxy 127\.0\.0\.1:\d+ answered 407 to CONNECT/)
      expect(refusing.requests.length).toBe(1) // not retried
    } finally {
      await client.close()
      await refusing.stop()
    }
  })
})

describe('proxy settings', () => {
  const settings = (env: NodeJS.ProcessEnv) => proxySettings(env)
  const route = (url: string, env: NodeJS.ProcessEnv) => proxyFor(new URL(url), settings(env))?.href

  it('matches NO_PROXY entries as hosts and their subdomains, with an optional port', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'example.com, .internal,*.corp, [::1], fd00::7, [fd00::8]:5000, 10.0.0.1:5000' }
    expect(route('https://example.com/v2/', env)).toBeUndefined()
    expect(route('https://registry.example.com/v2/', env)).toBeUndefined()
    expect(route('https://notexample.com/v2/', env)).toBe('http://proxy:3128/')
    expect(route('https://a.internal/v2/', env)).toBeUndefined()
    expect(route('https://x.corp/v2/', env)).toBeUndefined()
    expect(route('https://[::1]:5000/v2/', env)).toBeUndefined()
    expect(route('https://[fd00::7]/v2/', env)).toBeUndefined()
    expect(route('https://[fd00::8]:5000/v2/', env)).toBeUndefined()
    expect(route('https://[fd00::8]/v2/', env)).toBe('http://proxy:3128/')
    expect(route('https://10.0.0.1:5000/v2/', env)).toBeUndefined()
    expect(route('https://10.0.0.1/v2/', env)).toBe('http://proxy:3128/')
  })

  it('reads a proxy without a scheme as http://, and refuses other schemes', () => {
    expect(settings({ HTTP_PROXY: 'proxy.local:3128' }).http?.href).toBe('http://proxy.local:3128/')
    expect(() => settings({ HTTPS_PROXY: 'socks5://proxy:1080' })).toThrow(/HTTPS_PROXY="socks5:\/\/proxy:1080" is not a usable proxy URL/)
  })

  it('a bad proxy variable is ERR_REGISTRY_INVALID when the client is made', () => {
    proxyEnv({ HTTPS_PROXY: 'socks5://proxy:1080' })
    expect(() => new RegistryClient({ dockerConfig: false })).toThrow(expect.objectContaining({ code: 'ERR_REGISTRY_INVALID' }))
  })
})
