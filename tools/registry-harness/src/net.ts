/** Small networking helpers: free ports, a buffered HTTP request, listening on loopback. */
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type { Readable } from 'node:stream'

/** The only address the harness listens on. */
export const LOOPBACK = '127.0.0.1'

/**
 * Asks the kernel for a free TCP port on 127.0.0.1. The port is released before returning, so
 * another process may take it first: callers that pass it to a child retry on `EADDRINUSE`.
 *
 * @example
 * ```ts
 * const port = await freePort()
 * ```
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * Listens on an ephemeral port of 127.0.0.1 and resolves with the port.
 * @internal
 */
export async function listenLoopback(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, LOOPBACK, () => {
      server.off('error', reject)
      const addr = server.address()
      if (typeof addr === 'object' && addr !== null) resolve(addr.port)
      else reject(new Error('server has no address'))
    })
  })
}

/**
 * Closes a server and every connection it still has (keep-alive sockets included).
 * @internal
 */
export async function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** The answer of {@link httpRequest}: status, headers and the whole body. */
export interface HttpResponse {
  /** The HTTP status code. */
  status: number
  /** The response headers (lowercase names). */
  headers: http.IncomingHttpHeaders
  /** The body, read to its end. */
  body: Buffer
}

/** Options of {@link httpRequest}. */
export interface HttpRequestOptions {
  /** The method (default GET). */
  method?: string
  /** Request headers. */
  headers?: Record<string, string | number | string[]>
  /** A body: bytes, or a function that opens a fresh stream for each attempt. */
  body?: Buffer | string | (() => Readable)
  /** A CA (PEM) to trust for https URLs. */
  ca?: string
  /** An agent to reuse connections (default: a fresh connection, closed after the answer). */
  agent?: http.Agent
  /** Give up after this many milliseconds (default 60 s). */
  timeoutMs?: number
}

/**
 * One HTTP(S) request with the body buffered: for small control-plane calls of the harness
 * (never for large blobs, whose bodies go as streams).
 *
 * @example
 * ```ts
 * const res = await httpRequest(`${registry.url}/v2/`, { ca: registry.caPem })
 * ```
 */
export async function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url)
  const mod = u.protocol === 'https:' ? https : http
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.setTimeout(options.timeoutMs ?? 60_000, () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: timed out`)))
    req.on('error', reject)
    const body = options.body
    if (body === undefined) req.end()
    else if (typeof body === 'function') {
      const stream = body()
      stream.on('error', (err) => req.destroy(err))
      stream.pipe(req)
    } else req.end(body)
  })
}

/**
 * Sleeps for `ms` milliseconds.
 * @internal
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
