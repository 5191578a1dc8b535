/**
 * HTTP for the distribution API, on undici (measured here: WHATWG fetch was ~2.5× slower on
 * large bodies). One place for the scheme (plain HTTP only for hosts marked insecure), the
 * custom CA, proxies from the environment, retries with exponential backoff and jitter
 * (network errors, 408, 429, 5xx; `Retry-After` honoured, capped), and redirects that drop
 * `Authorization` when they leave the host.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici'
import { RegistryError, type RateLimit } from './errors.js'

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

export type HttpResponse = Dispatcher.ResponseData & { url: string }

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504])
const RETRY_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'])

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
  private readonly dispatcher: Dispatcher
  private readonly insecure: Set<string>
  private readonly retry: Required<RetryOptions>
  private readonly userAgent: string

  constructor(options: TransportOptions = {}) {
    this.insecure = new Set(options.insecure ?? [])
    this.retry = { attempts: 5, baseDelayMs: 200, maxDelayMs: 30_000, ...options.retry }
    this.userAgent = options.userAgent ?? 'ctr-registry-client'
    const connect = options.ca ? { ca: options.ca } : undefined
    const env = process.env
    const proxied = env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy
    this.dispatcher = proxied
      ? new EnvHttpProxyAgent({ ...(connect ? { connect, requestTls: connect } : {}) })
      : new Agent({ ...(connect ? { connect } : {}), keepAliveTimeout: 10_000, connections: 16 })
  }

  /** `https://host/v2/…`, or `http://` for a host marked insecure. */
  baseUrl(host: string): string {
    return `${this.insecure.has(host) ? 'http' : 'https'}://${host}`
  }

  /** Closes idle connections. */
  async close(): Promise<void> {
    await this.dispatcher.close()
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
    let headers = { 'user-agent': this.userAgent, ...req.headers }
    for (let hops = 0; ; hops++) {
      const res = await request(current, {
        method: method as Dispatcher.HttpMethod,
        headers,
        body: req.body as Dispatcher.DispatchOptions['body'],
        dispatcher: this.dispatcher,
        ...(req.signal ? { signal: req.signal } : {}),
      })
      const location = header(res, 'location')
      if (!follow || ![301, 302, 303, 307, 308].includes(res.statusCode) || !location) return Object.assign(res, { url: current })
      await res.body.dump().catch(() => undefined)
      if (hops >= 10) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${method} ${url}: more than 10 redirects`, { url })
      const next = new URL(location, current)
      if (next.host !== new URL(current).host) {
        // Credentials are for the registry only: never hand them to the storage backend.
        const { authorization: _dropped, ...rest } = headers as Record<string, string>
        headers = rest as typeof headers
      }
      current = next.toString()
    }
  }
}
