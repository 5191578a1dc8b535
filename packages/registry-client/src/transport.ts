/**
 * HTTP for the distribution API, on Node's own `http`/`https` (measured here against undici:
 * undici cost ~0.15 s to import, moved bodies ~2× slower through its WebAssembly parser and
 * held ~40 MiB more at peak; WHATWG fetch was slower still). One place for the scheme (plain
 * HTTP only for hosts marked insecure), the custom CA, keep-alive pools, proxies from the
 * environment, retries with exponential backoff and jitter (network errors, 408, 429, 5xx;
 * `Retry-After` honoured, capped), and redirects that drop `Authorization` when they leave
 * the host.
 */
import http from 'node:http'
import https from 'node:https'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { RegistryError, type RateLimit } from './errors.js'
import { HttpPool, HttpsPool, TunnelPool, endpoint, proxyAuthorization, proxyFor, proxySettings, type Pool, type ProxySettings } from './agents.js'

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number
  /** First backoff in ms, doubled each time, with full jitter (default 200). */
  baseDelayMs?: number
  /** Upper bound of one wait, `Retry-After` included (default 30000). */
  maxDelayMs?: number
}

export interface TransportOptions {
  /** Hosts (`host:port`) spoken to over plain HTTP. */
  insecure?: string[]
  /** PEM CA certificate(s) trusted in addition to the system's. */
  ca?: string | string[]
  retry?: RetryOptions
  /** Sent as User-Agent. */
  userAgent?: string
}

export interface HttpRequest {
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE'
  headers?: Record<string, string>
  body?: Buffer | string | NodeJS.ReadableStream | AsyncIterable<Uint8Array>
  signal?: AbortSignal
  /** Retry on failure (default: for GET, HEAD, PUT and DELETE — never for a streamed body). */
  retry?: boolean
  /** Follow redirects (default true for GET and HEAD). */
  followRedirects?: boolean
}

/** A response: status, headers (lower-case names; a repeated header is an array), body. */
export interface HttpResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: ResponseBody
  /** The URL that answered (after redirects). */
  url: string
}

/** Bytes of a body read ahead of its consumer (see {@link ResponseBody}). */
const BODY_QUEUE = 128 << 10

/** Bytes of an unread body {@link ResponseBody.dump} drains to keep the connection; past that it closes it. */
const DUMP_LIMIT = 1 << 20

/**
 * A response body, read once: chunk by chunk (`for await`), whole (`text`, `json`, `bytes`),
 * or thrown away (`dump`).
 */
export class ResponseBody implements AsyncIterable<Buffer> {
  constructor(private readonly res: http.IncomingMessage) {}

  /**
   * The chunks as the socket delivers them. Up to {@link BODY_QUEUE} bytes are read ahead
   * while the consumer works; past that the socket is paused, so backpressure reaches the
   * sender and memory stays flat. (Readable's own iterator would join whatever is buffered
   * into a new Buffer at each step: a copy of every byte.) Errors if the connection ends
   * before the body does.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const res = this.res
    const queue: Buffer[] = []
    let queued = 0
    let ended = res.readableEnded
    let failed: Error | undefined
    let wake: (() => void) | undefined
    const notify = () => {
      const w = wake
      wake = undefined
      w?.()
    }
    const onData = (c: Buffer) => {
      queue.push(c)
      queued += c.length
      if (queued >= BODY_QUEUE) res.pause()
      notify()
    }
    const onEnd = () => {
      ended = true
      notify()
    }
    const onError = (err: Error) => {
      failed ??= err
      notify()
    }
    const onClose = () => {
      if (!ended) failed ??= Object.assign(new Error('the connection closed before the body ended'), { code: 'ECONNRESET' })
      notify()
    }
    res.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
    try {
      for (;;) {
        const c = queue.shift()
        if (c) {
          queued -= c.length
          if (queued < BODY_QUEUE && res.isPaused()) res.resume()
          yield c
        } else if (failed) throw failed
        else if (ended) return
        else await new Promise<void>((resolve) => (wake = resolve))
      }
    } finally {
      res.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
      if (!ended) res.destroy()
    }
  }

  /** The whole body. */
  async bytes(): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const c of this) chunks.push(c)
    return Buffer.concat(chunks)
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text())
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.bytes()
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
  }

  /** Reads and drops the rest of a small body (so the connection is reused), or closes it. */
  async dump(): Promise<void> {
    const res = this.res
    if (res.readableEnded || res.destroyed) return
    let seen = 0
    await new Promise<void>((resolve) => {
      res.on('data', (c: Buffer) => {
        seen += c.length
        if (seen > DUMP_LIMIT) res.destroy()
      })
      res.once('end', resolve).once('close', resolve).once('error', () => resolve())
      res.resume()
    })
  }

  /** Stops reading and closes the connection. */
  destroy(err?: Error): void {
    this.res.destroy(err)
  }
}

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504])
const RETRY_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN'])
/** A connection that cannot be opened in this long fails (and is retried). */
const CONNECT_TIMEOUT_MS = 10_000
/** A request whose connection stays silent this long fails (and is retried, or resumed). */
const IDLE_TIMEOUT_MS = 300_000

/** First value of a header. */
export function header(res: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()]
  return Array.isArray(v) ? v[0] : v
}

/** `Retry-After` (seconds or an HTTP date) in ms. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const t = Date.parse(value)
  return Number.isNaN(t) ? undefined : Math.max(0, t - now)
}

export function rateLimitOf(res: { headers: Record<string, string | string[] | undefined> }): RateLimit | undefined {
  const limit = header(res, 'ratelimit-limit') ?? header(res, 'x-ratelimit-limit')
  const remaining = header(res, 'ratelimit-remaining') ?? header(res, 'x-ratelimit-remaining')
  const retry = retryAfterMs(header(res, 'retry-after'))
  if (limit === undefined && remaining === undefined && retry === undefined) return undefined
  return { ...(limit !== undefined ? { limit } : {}), ...(remaining !== undefined ? { remaining } : {}), ...(retry !== undefined ? { retryAfterMs: retry } : {}) }
}

export class Transport {
  private readonly insecure: Set<string>
  private readonly retry: Required<RetryOptions>
  private readonly userAgent: string
  private readonly ca: string | string[] | undefined
  private readonly proxies: ProxySettings
  private readonly pools = new Map<string, Pool>()

  constructor(options: TransportOptions = {}) {
    this.insecure = new Set(options.insecure ?? [])
    this.retry = { attempts: 5, baseDelayMs: 200, maxDelayMs: 30_000, ...options.retry }
    this.userAgent = options.userAgent ?? 'ctr-registry-client'
    this.ca = options.ca
    try {
      this.proxies = proxySettings()
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_INVALID', (err as Error).message, { cause: err })
    }
  }

  /** `https://host/v2/…`, or `http://` for a host marked insecure. */
  baseUrl(host: string): string {
    return `${this.insecure.has(host) ? 'http' : 'https'}://${host}`
  }

  /** Closes idle connections (requests in flight finish first). */
  async close(): Promise<void> {
    for (const pool of this.pools.values()) pool.close()
    this.pools.clear()
  }

  /** The keep-alive pool for plain HTTP, HTTPS, or HTTPS tunnelled through a proxy. */
  private pool(kind: 'http' | 'https', tunnel?: URL): Pool {
    const key = tunnel ? `tunnel ${tunnel.href}` : kind
    let pool = this.pools.get(key)
    if (!pool) {
      const options = { keepAlive: true, maxSockets: 16, ...(kind === 'https' && this.ca ? { ca: this.ca } : {}) }
      pool = tunnel ? new TunnelPool(tunnel, CONNECT_TIMEOUT_MS, options) : kind === 'https' ? new HttpsPool(options) : new HttpPool(options)
      this.pools.set(key, pool)
    }
    return pool
  }

  /** One HTTP exchange: resolves at the response head; the body streams after. */
  private exchange(url: URL, method: string, headers: Record<string, string>, body: HttpRequest['body'], signal: AbortSignal | undefined): Promise<HttpResponse> {
    const proxy = proxyFor(url, this.proxies)
    let target: http.RequestOptions
    let client: typeof http | typeof https
    if (proxy && url.protocol === 'http:') {
      // Plain HTTP through a proxy: the absolute URL goes to the proxy, which forwards it.
      target = { ...endpoint(proxy), path: url.href, headers: { ...headers, host: url.host, ...proxyAuthorization(proxy) }, agent: this.pool(proxy.protocol === 'https:' ? 'https' : 'http') }
      client = proxy.protocol === 'https:' ? https : http
    } else {
      target = { ...endpoint(url), path: url.pathname + url.search, headers, agent: this.pool(url.protocol === 'https:' ? 'https' : 'http', proxy) }
      client = url.protocol === 'https:' ? https : http
    }
    return new Promise<HttpResponse>((resolve, reject) => {
      const req = client.request({ ...target, method, ...(signal ? { signal } : {}) }, (res) => {
        const headers: HttpResponse['headers'] = {}
        for (const [name, values] of Object.entries(res.headersDistinct)) headers[name] = values && values.length === 1 ? values[0] : values
        resolve({ statusCode: res.statusCode ?? 0, headers, body: new ResponseBody(res), url: url.href })
      })
      req.on('error', reject)
      const timeout = (ms: number, what: string) => () => req.destroy(Object.assign(new Error(`${what} (${ms / 1000} s)`), { code: 'ETIMEDOUT' }))
      req.setTimeout(IDLE_TIMEOUT_MS, timeout(IDLE_TIMEOUT_MS, 'no data from the server'))
      req.once('socket', (socket) => {
        if (!socket.connecting) return
        const timer = setTimeout(timeout(CONNECT_TIMEOUT_MS, `could not connect to ${url.host}`), CONNECT_TIMEOUT_MS)
        socket.once('connect', () => clearTimeout(timer)).once('close', () => clearTimeout(timer))
      })
      if (body === undefined) req.end()
      else if (typeof body === 'string' || Buffer.isBuffer(body)) {
        if (!req.hasHeader('content-length')) req.setHeader('content-length', Buffer.byteLength(body))
        req.end(body)
      } else pipeline(body, req).catch((err: Error) => req.destroy(err))
    })
  }

  /**
   * Sends a request; retries and follows redirects as configured; returns any final
   * response (the caller decides what a status means). Throws only for network failures
   * that outlast the retries, or abort.
   */
  async send(url: string, req: HttpRequest = {}): Promise<HttpResponse> {
    const method = req.method ?? 'GET'
    const streamed = req.body !== undefined && typeof req.body !== 'string' && !Buffer.isBuffer(req.body)
    const mayRetry = req.retry ?? (!streamed && ['GET', 'HEAD', 'PUT', 'DELETE'].includes(method))
    const follow = req.followRedirects ?? (method === 'GET' || method === 'HEAD')
    let attempt = 0
    for (;;) {
      attempt++
      let res: HttpResponse
      try {
        res = await this.follow(url, method, req, follow)
      } catch (err) {
        if (err instanceof RegistryError) throw err
        const code = (err as NodeJS.ErrnoException).code ?? ''
        if (req.signal?.aborted || (err as Error).name === 'AbortError') {
          throw new RegistryError('ERR_REGISTRY_ABORTED', `${method} ${url}: aborted`, { url, cause: err })
        }
        if (mayRetry && RETRY_ERRORS.has(code) && attempt < this.retry.attempts) {
          await this.backoff(attempt, undefined, req.signal)
          continue
        }
        throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${method} ${url}: ${(err as Error).message}${code ? ` (${code})` : ''}`, { url, cause: err })
      }
      if (mayRetry && RETRY_STATUS.has(res.statusCode) && attempt < this.retry.attempts) {
        await res.body.dump().catch(() => undefined)
        await this.backoff(attempt, retryAfterMs(header(res, 'retry-after')), req.signal)
        continue
      }
      return res
    }
  }

  private async backoff(attempt: number, retryAfter: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    const exp = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1))
    const wait = Math.min(this.retry.maxDelayMs, retryAfter ?? Math.random() * exp)
    try {
      await sleep(wait, undefined, signal ? { signal } : undefined)
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_ABORTED', 'aborted while waiting to retry', { cause: err })
    }
  }

  private async follow(url: string, method: string, req: HttpRequest, follow: boolean): Promise<HttpResponse> {
    let current = url
    let headers: Record<string, string> = { 'user-agent': this.userAgent, ...req.headers }
    for (let hops = 0; ; hops++) {
      const res = await this.exchange(new URL(current), method, headers, req.body, req.signal)
      const location = header(res, 'location')
      if (!follow || ![301, 302, 303, 307, 308].includes(res.statusCode) || !location) return res
      await res.body.dump().catch(() => undefined)
      if (hops >= 10) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${method} ${url}: more than 10 redirects`, { url })
      const next = new URL(location, current)
      if (next.host !== new URL(current).host) {
        // Credentials are for the registry only: never hand them to the storage backend.
        const { authorization: _dropped, ...rest } = headers
        headers = rest
      }
      current = next.toString()
    }
  }
}
