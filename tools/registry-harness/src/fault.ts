/**
 * Misbehaving registries: a small HTTP server on 127.0.0.1 that proxies to a real registry (or
 * imitates one from an OCI layout) and injects faults: wrong digest, wrong size, 429 with
 * Retry-After, 5xx, a connection dropped mid-blob (then Range resumes), redirects to another
 * host, a slow body, paginated tag lists. Every request is recorded for assertions.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, existsSync, promises as fs } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { isDigest, MediaType } from '@ctr/oci'
import { blobPath, readLayoutIndex } from './layout.js'
import { closeServer, listenLoopback, LOOPBACK, sleep } from './net.js'

/** Which requests a fault applies to. */
export type FaultMatch =
  /** `GET /v2/<name>/blobs/<digest>` (and `GET /blobs/<digest>`, the foreign-layer path). */
  | 'blob'
  /** `GET /v2/<name>/manifests/<reference>`. */
  | 'manifest'
  /** `GET /v2/<name>/tags/list`. */
  | 'tags'
  /** `GET /v2/_catalog`. */
  | 'catalog'
  /** Every request except `GET /v2/`. */
  | 'any'
  /** Anything you decide. */
  | ((request: RecordedRequest) => boolean)

/** Fields every fault has. */
export interface FaultBase {
  /** Which requests (default `blob`). */
  match?: FaultMatch
  /**
   * How many matching requests get the fault before the server behaves (default: 1 for
   * `status`, `rate-limit`, `server-error`, `unauthorized` and `drop`; unlimited for the others).
   */
  times?: number
}

/** A fault to inject; see {@link startFaultServer}. */
export type Fault =
  /** The body has the right size but one flipped byte; headers still claim the requested digest. */
  | (FaultBase & { kind: 'wrong-digest' })
  /** The body is `delta` bytes longer (default +16) or shorter; Content-Length matches the body. */
  | (FaultBase & { kind: 'wrong-size'; delta?: number })
  /** Answers `status` (e.g. 408, 401, 404) with optional headers and body. */
  | (FaultBase & { kind: 'status'; status: number; headers?: Record<string, string>; body?: string })
  /**
   * 429 with `Retry-After` (seconds, default 1, or an HTTP date string) and Docker Hub's
   * `ratelimit-limit`/`ratelimit-remaining` headers, then success.
   */
  | (FaultBase & { kind: 'rate-limit'; retryAfter?: number | string })
  /** 500 (or `status`: 502, 503…) then success. */
  | (FaultBase & { kind: 'server-error'; status?: number })
  /**
   * Sends the headers (full Content-Length) and `afterBytes` of the body (default half), then
   * closes the connection (`reset`: with a TCP RST). Later `Range: bytes=N-` requests get
   * `range`: `honour` (206 from N, default), `ignore` (200 with the whole body) or
   * `wrong-start` (206 from 0).
   */
  | (FaultBase & { kind: 'drop'; afterBytes?: number; reset?: boolean; range?: 'honour' | 'ignore' | 'wrong-start' })
  /**
   * Redirects blob GETs (307 by default) to a second server on another port
   * ({@link FaultServer.redirectTarget}), which serves the blob and records whether
   * `Authorization` arrived. `host` is the host name put in `Location` (default 127.0.0.1).
   */
  | (FaultBase & { kind: 'redirect'; status?: 301 | 302 | 303 | 307 | 308; host?: string })
  /**
   * 401 as if the client's token had expired or been revoked: the upstream's own challenge
   * (the request is replayed upstream without `Authorization`), or `Basic` when imitating a
   * layout. For testing re-authentication.
   */
  | (FaultBase & { kind: 'unauthorized' })
  /** Sends the body `chunkSize` bytes (default 1024) every `intervalMs` (default 100). */
  | (FaultBase & { kind: 'slow'; chunkSize?: number; intervalMs?: number })
  /** Tag lists and the catalog in pages of `pageSize` with `Link: <…>; rel="next"` (2.8 ignores `n`/`last` for tags). */
  | { kind: 'paginate'; pageSize: number; match?: undefined; times?: undefined }

/** The kinds of {@link Fault}. */
export type FaultKind = Fault['kind']

/** A request a fault server (or its redirect target) saw. */
export interface RecordedRequest {
  /** The method. */
  method: string
  /** Path and query, as sent. */
  url: string
  /** The path alone. */
  path: string
  /** The request headers (lowercase names). */
  headers: http.IncomingHttpHeaders
  /** When it arrived (ms since the epoch). */
  time: number
  /** What the path addresses. */
  route: 'base' | 'blob' | 'manifest' | 'tags' | 'catalog' | 'upload' | 'raw-blob' | 'redirected' | 'other'
  /** The repository, for `/v2/<name>/…` paths. */
  repository?: string
  /** The digest or tag, for blob and manifest paths. */
  reference?: string
  /** The fault applied, if any. */
  fault?: FaultKind
  /** The status answered (0 until the headers went out). */
  status: number
  /** Body bytes sent. */
  bytesSent: number
  /** Whether the response was finished. */
  completed: boolean
  /** Whether the client went away (or the connection was cut) before the end. */
  aborted: boolean
}

/** Options of {@link startFaultServer}. */
export interface FaultServerOptions {
  /** The fault(s) to inject, first match wins (none by default: a faithful proxy or imitation). */
  fault?: Fault | Fault[]
  /** A registry to proxy to: its URL, or an object with `url` and `caPem` (a {@link Registry} fits). */
  upstream?: string | { url: string; caPem?: string }
  /** An OCI layout to imitate a read-only registry from (tags are `repository:tag` ref names, or bare tags). */
  layout?: string
  /** Headers added to every answer (e.g. `ratelimit-remaining`). */
  headers?: Record<string, string>
}

/** A running fault server; see {@link startFaultServer}. */
export interface FaultServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string
  /** `127.0.0.1:PORT`. */
  readonly host: string
  /** The port. */
  readonly port: number
  /** Every request, oldest first. */
  readonly requests: RecordedRequest[]
  /** The second server that redirected blob GETs land on (another port). */
  readonly redirectTarget: { url: string; host: string; requests: RecordedRequest[] }
  /** The faults in force. */
  readonly faults: readonly Fault[]
  /** Replaces the faults and resets their counters. */
  setFaults(fault: Fault | Fault[] | undefined): void
  /** How many requests got a fault (of `kind`, or any). */
  applied(kind?: FaultKind): number
  /** Clears the records (both servers) and resets the fault counters. */
  reset(): void
  /** Stops both servers. */
  stop(): Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Sources: where the real content comes from.

type Headers = Record<string, string | string[]>
type Opened =
  | { ok: true; total: number; start: number; end: number; body: Readable; headers: Headers }
  | { ok: false; status: number; headers: Headers; body: Buffer }

interface Source {
  /** Opens bytes `start..end` (inclusive; end undefined = to the end) of a blob. */
  blob(repo: string, digest: string, authorization: string | undefined, start: number, end: number | undefined): Promise<Opened>
  /** The full list of tags of `repo`, or of repositories (`repo` undefined). */
  list(repo: string | undefined, authorization: string | undefined): Promise<{ ok: true; items: string[] } | { ok: false; status: number; headers: Headers; body: Buffer }>
  /** The answer to the same request without credentials (a 401 challenge where auth is on). */
  challenge(req: http.IncomingMessage): Promise<{ status: number; headers: Headers; body: Buffer }>
  /** Serves a request as the real thing would. */
  serve(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, count: Transform): Promise<void>
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

function stripHopByHop(h: http.IncomingHttpHeaders): Headers {
  const out: Headers = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v
  return out
}

function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
  })
}

function jsonError(status: number, code: string, message: string): { status: number; headers: Headers; body: Buffer } {
  return { status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ errors: [{ code, message }] })) }
}

class UpstreamSource implements Source {
  private readonly base: URL
  private readonly ca: string | undefined
  private readonly agent: http.Agent

  constructor(url: string, ca: string | undefined) {
    this.base = new URL(url)
    this.ca = ca
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true, ...(ca !== undefined ? { ca } : {}) }) : new http.Agent({ keepAlive: true })
  }

  close(): void {
    this.agent.destroy()
  }

  private request(path: string, method: string, headers: Headers): Promise<http.IncomingMessage> & { req?: http.ClientRequest } {
    const mod = this.base.protocol === 'https:' ? https : http
    return new Promise((resolve, reject) => {
      const req = mod.request(new URL(path, this.base), { method, headers, agent: this.agent, ...(this.ca !== undefined ? { ca: this.ca } : {}) }, resolve)
      req.on('error', reject)
      req.end()
    })
  }

  async blob(repo: string, digest: string, authorization: string | undefined, start: number, end: number | undefined): Promise<Opened> {
    const headers: Headers = {}
    if (authorization !== undefined) headers.authorization = authorization
    if (start > 0 || end !== undefined) headers.range = `bytes=${start}-${end ?? ''}`
    const res = await this.request(`/v2/${repo}/blobs/${digest}`, 'GET', headers)
    const status = res.statusCode ?? 0
    if (status === 200 || status === 206) {
      let total = Number(res.headers['content-length'] ?? 0)
      let gotStart = 0
      if (status === 206) {
        const m = /bytes (\d+)-(\d+)\/(\d+)/.exec(res.headers['content-range'] ?? '')
        gotStart = Number(m?.[1] ?? 0)
        total = Number(m?.[3] ?? total)
      }
      if (gotStart !== start) {
        res.destroy()
        return { ok: false, ...jsonError(502, 'UNKNOWN', `upstream answered a range from ${gotStart}, not ${start}`) }
      }
      return { ok: true, total, start, end: end ?? total - 1, body: res, headers: stripHopByHop(res.headers) }
    }
    return { ok: false, status, headers: stripHopByHop(res.headers), body: await readAll(res) }
  }

  async list(repo: string | undefined, authorization: string | undefined) {
    const headers: Headers = authorization !== undefined ? { authorization } : {}
    const items: string[] = []
    // The catalog pages (n at most 1000 in 2.8); tags/list answers everything at once.
    let next: string | undefined = repo === undefined ? '/v2/_catalog?n=1000' : `/v2/${repo}/tags/list`
    while (next !== undefined) {
      const res = await this.request(next, 'GET', headers)
      const body = await readAll(res)
      if (res.statusCode !== 200) return { ok: false as const, status: res.statusCode ?? 0, headers: stripHopByHop(res.headers), body }
      const doc = JSON.parse(body.toString('utf8')) as { tags?: string[] | null; repositories?: string[] | null }
      items.push(...((repo === undefined ? doc.repositories : doc.tags) ?? []))
      next = /<([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''))?.[1]
    }
    return { ok: true as const, items }
  }

  async challenge(req: http.IncomingMessage): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const headers = stripHopByHop(req.headers)
    delete headers.authorization
    delete headers['content-length']
    headers['x-forwarded-proto'] = 'http'
    // HEAD: the challenge is in the headers, and a registry without auth would send a whole blob.
    const res = await this.request(req.url ?? '/', 'HEAD', headers)
    res.resume()
    const e = jsonError(401, 'UNAUTHORIZED', 'authentication required')
    return { status: res.statusCode ?? 0, headers: { ...stripHopByHop(res.headers), 'content-type': 'application/json' }, body: e.body }
  }

  serve(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, count: Transform): Promise<void> {
    const mod = this.base.protocol === 'https:' ? https : http
    const headers = stripHopByHop(req.headers)
    // Keep the Host the client used, so the registry's Location URLs point back here.
    headers['x-forwarded-proto'] = 'http'
    return new Promise((resolve) => {
      const up = mod.request(
        new URL(req.url ?? '/', this.base),
        { method: req.method, headers, agent: this.agent, ...(this.ca !== undefined ? { ca: this.ca } : {}) },
        (upRes) => {
          rec.status = upRes.statusCode ?? 0
          res.writeHead(upRes.statusCode ?? 502, stripHopByHop(upRes.headers))
          pipeline(upRes, count, res).then(resolve, () => resolve())
        },
      )
      up.on('error', (err) => {
        if (!res.headersSent) {
          const e = jsonError(502, 'UNKNOWN', `upstream: ${err.message}`)
          rec.status = e.status
          res.writeHead(e.status, e.headers)
          res.end(e.body)
        } else res.destroy()
        resolve()
      })
      req.pipe(up)
    })
  }
}

class LayoutSource implements Source {
  constructor(private readonly dir: string) {}

  private async tagged(): Promise<Map<string, { digest: string; mediaType: string; size: number }>> {
    const map = new Map<string, { digest: string; mediaType: string; size: number }>()
    if (!existsSync(`${this.dir}/index.json`)) return map
    const index = await readLayoutIndex(this.dir)
    for (const m of index.manifests) {
      const name = m.annotations?.['org.opencontainers.image.ref.name']
      if (name !== undefined) map.set(name, { digest: m.digest, mediaType: m.mediaType, size: m.size })
    }
    return map
  }

  async blob(_repo: string, digest: string, _auth: string | undefined, start: number, end: number | undefined): Promise<Opened> {
    if (!isDigest(digest)) return { ok: false, ...jsonError(400, 'DIGEST_INVALID', `invalid digest ${digest}`) }
    const file = blobPath(this.dir, digest)
    let total: number
    try {
      total = (await fs.stat(file)).size
    } catch {
      return { ok: false, ...jsonError(404, 'BLOB_UNKNOWN', `blob unknown: ${digest}`) }
    }
    const last = Math.min(end ?? total - 1, total - 1)
    if (start > last && total > 0) return { ok: false, ...jsonError(416, 'RANGE_INVALID', `range ${start}- of ${total}`) }
    return { ok: true, total, start, end: last, body: total === 0 ? Readable.from([]) : createReadStream(file, { start, end: last }), headers: {} }
  }

  async challenge(): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const e = jsonError(401, 'UNAUTHORIZED', 'authentication required')
    return { ...e, headers: { ...e.headers, 'www-authenticate': 'Basic realm="ctr-fault-server"' } }
  }

  async list(repo: string | undefined) {
    const names = [...(await this.tagged()).keys()]
    if (repo === undefined) {
      const repos = new Set(names.filter((n) => n.includes(':')).map((n) => n.slice(0, n.lastIndexOf(':'))))
      return { ok: true as const, items: [...repos].sort() }
    }
    const prefix = `${repo}:`
    return { ok: true as const, items: names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)) }
  }

  async serve(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, count: Transform): Promise<void> {
    const method = req.method ?? 'GET'
    const send = async (status: number, headers: Headers, body: Buffer | Readable, length?: number): Promise<void> => {
      rec.status = status
      const h: Headers = { ...headers }
      if (Buffer.isBuffer(body)) h['content-length'] = String(body.length)
      else if (length !== undefined) h['content-length'] = String(length)
      res.writeHead(status, { 'docker-distribution-api-version': 'registry/2.0', ...h })
      if (method === 'HEAD') {
        if (!Buffer.isBuffer(body)) body.destroy()
        res.end()
        return
      }
      await pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, count, res).catch(() => undefined)
    }
    const fail = (e: { status: number; headers: Headers; body: Buffer }): Promise<void> => send(e.status, e.headers, e.body)
    if (method !== 'GET' && method !== 'HEAD') {
      req.resume()
      return fail(jsonError(405, 'UNSUPPORTED', 'this imitation registry is read-only'))
    }
    switch (rec.route) {
      case 'base':
        return send(200, { 'content-type': 'application/json' }, Buffer.from('{}'))
      case 'blob':
      case 'raw-blob':
      case 'redirected': {
        const opened = await this.blob(rec.repository ?? '', rec.reference ?? '', undefined, 0, undefined)
        if (!opened.ok) return fail(opened)
        return send(200, { 'content-type': 'application/octet-stream', 'docker-content-digest': rec.reference ?? '', 'accept-ranges': 'bytes' }, opened.body, opened.total)
      }
      case 'manifest': {
        const ref = rec.reference ?? ''
        let digest = ref
        let mediaType: string | undefined
        if (!isDigest(ref)) {
          const tags = await this.tagged()
          const hit = tags.get(`${rec.repository}:${ref}`) ?? tags.get(ref)
          if (hit === undefined) return fail(jsonError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${rec.repository}:${ref}`))
          digest = hit.digest
          mediaType = hit.mediaType
        }
        let bytes: Buffer
        try {
          bytes = await fs.readFile(blobPath(this.dir, digest))
        } catch {
          return fail(jsonError(404, 'MANIFEST_UNKNOWN', `manifest unknown: ${digest}`))
        }
        if (mediaType === undefined) {
          try {
            mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType
          } catch {
            /* not JSON */
          }
        }
        return send(200, { 'content-type': mediaType ?? MediaType.OciManifest, 'docker-content-digest': digest }, bytes)
      }
      case 'tags':
      case 'catalog': {
        const listed = await this.list(rec.route === 'tags' ? rec.repository : undefined)
        const doc = rec.route === 'tags' ? { name: rec.repository, tags: listed.items } : { repositories: listed.items }
        return send(200, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify(doc)))
      }
      default:
        return fail(jsonError(404, 'NOT_FOUND', `not found: ${rec.path}`))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Body transforms.

class Counter extends Transform {
  constructor(private readonly rec: RecordedRequest) {
    super()
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.rec.bytesSent += chunk.length
    cb(null, chunk)
  }
}

/** Flips the first byte. */
class Corrupt extends Transform {
  private done = false
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (!this.done && chunk.length > 0) {
      this.done = true
      const copy = Buffer.from(chunk)
      copy[0] = (copy[0] ?? 0) ^ 0xff
      cb(null, copy)
      return
    }
    cb(null, chunk)
  }
}

/** Passes at most `limit` bytes, then appends `extra` bytes at the end. */
class Resize extends Transform {
  private seen = 0
  constructor(
    private readonly limit: number,
    private readonly extra: number,
  ) {
    super()
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    const room = this.limit - this.seen
    this.seen += chunk.length
    if (room <= 0) cb()
    else cb(null, chunk.length > room ? chunk.subarray(0, room) : chunk)
  }
  override _flush(cb: TransformCallback): void {
    cb(null, this.extra > 0 ? Buffer.alloc(this.extra, 0x58) : undefined)
  }
}

/** Passes `limit` bytes then ends its output early (the rest of the input is discarded). */
class Cut extends Transform {
  private seen = 0
  private ended = false
  constructor(private readonly limit: number) {
    super()
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.ended) {
      cb()
      return
    }
    const room = this.limit - this.seen
    this.seen += chunk.length
    if (room > 0) this.push(chunk.length > room ? chunk.subarray(0, room) : chunk)
    if (this.seen >= this.limit) {
      this.ended = true
      this.push(null)
    }
    cb()
  }
}

/** Sends `chunkSize` bytes every `intervalMs`. */
class Throttle extends Transform {
  constructor(
    private readonly chunkSize: number,
    private readonly intervalMs: number,
  ) {
    super({ highWaterMark: chunkSize })
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    void (async () => {
      for (let off = 0; off < chunk.length; off += this.chunkSize) {
        if (this.destroyed) return
        this.push(chunk.subarray(off, off + this.chunkSize))
        await sleep(this.intervalMs)
      }
      cb()
    })()
  }
}

// ---------------------------------------------------------------------------------------------

function route(path: string): Pick<RecordedRequest, 'route' | 'repository' | 'reference'> {
  if (path === '/v2/' || path === '/v2') return { route: 'base' }
  if (path === '/v2/_catalog') return { route: 'catalog' }
  let m = /^\/v2\/(.+)\/blobs\/uploads(?:\/.*)?$/.exec(path)
  if (m) return { route: 'upload', repository: m[1] }
  m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path)
  if (m) return { route: 'blob', repository: m[1], reference: decodeURIComponent(m[2] ?? '') }
  m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path)
  if (m) return { route: 'manifest', repository: m[1], reference: decodeURIComponent(m[2] ?? '') }
  m = /^\/v2\/(.+)\/tags\/list$/.exec(path)
  if (m) return { route: 'tags', repository: m[1] }
  m = /^\/blobs\/([^/]+)$/.exec(path)
  if (m) return { route: 'raw-blob', reference: decodeURIComponent(m[1] ?? '') }
  return { route: 'other' }
}

function matches(match: FaultMatch | undefined, rec: RecordedRequest): boolean {
  if (typeof match === 'function') return match(rec)
  switch (match ?? 'blob') {
    case 'blob':
      return rec.method === 'GET' && (rec.route === 'blob' || rec.route === 'raw-blob')
    case 'manifest':
      return rec.method === 'GET' && rec.route === 'manifest'
    case 'tags':
      return rec.method === 'GET' && rec.route === 'tags'
    case 'catalog':
      return rec.method === 'GET' && rec.route === 'catalog'
    case 'any':
      return rec.route !== 'base'
  }
  return false
}

function defaultTimes(f: Fault): number {
  return f.kind === 'status' || f.kind === 'rate-limit' || f.kind === 'server-error' || f.kind === 'drop' || f.kind === 'unauthorized'
    ? 1
    : Number.POSITIVE_INFINITY
}

function parseRange(h: string | undefined): { start: number; end?: number } | undefined {
  const m = /^bytes=(\d+)-(\d*)$/.exec(h?.trim() ?? '')
  if (!m) return undefined
  return { start: Number(m[1]), ...(m[2] ? { end: Number(m[2]) } : {}) }
}

function newRecord(req: http.IncomingMessage): RecordedRequest {
  const url = req.url ?? '/'
  const path = url.split('?')[0] ?? '/'
  return {
    method: req.method ?? 'GET',
    url,
    path,
    headers: req.headers,
    time: Date.now(),
    ...route(path),
    status: 0,
    bytesSent: 0,
    completed: false,
    aborted: false,
  }
}

function track(res: http.ServerResponse, rec: RecordedRequest): void {
  res.once('finish', () => {
    rec.completed = true
    rec.status = res.statusCode
  })
  res.once('close', () => {
    if (!res.writableFinished) rec.aborted = true
    if (rec.status === 0 && res.headersSent) rec.status = res.statusCode
  })
}

/**
 * Starts a misbehaving registry on 127.0.0.1: a proxy to `upstream` (a real registry; the
 * client's `Authorization` and `Host` go through, so auth challenges and upload `Location`s
 * work) or an imitation of a read-only registry serving the OCI layout `layout` (also at
 * `GET /blobs/<digest>`, the path foreign-layer `urls` use), injecting the given faults into
 * matching requests (blob GETs by default). A second server on another port receives
 * redirected blob GETs ({@link FaultServer.redirectTarget}).
 *
 * @example
 * ```ts
 * const flaky = await startFaultServer({ upstream: registry, fault: { kind: 'drop', afterBytes: 4096 } })
 * // pull `${flaky.host}/library/busybox:latest`: the first blob GET is cut after 4096 bytes,
 * // the resume with `Range: bytes=4096-` gets a 206
 * flaky.requests.filter((r) => r.route === 'blob')
 * const limited = await startFaultServer({ upstream: registry, fault: { kind: 'rate-limit', retryAfter: 1, times: 2 } })
 * const moved = await startFaultServer({ upstream: registry, fault: { kind: 'redirect' } })
 * moved.redirectTarget.requests[0]?.headers.authorization // must be undefined
 * ```
 */
export async function startFaultServer(behaviour: FaultServerOptions): Promise<FaultServer> {
  if ((behaviour.upstream === undefined) === (behaviour.layout === undefined)) {
    throw new TypeError('startFaultServer needs exactly one of `upstream` or `layout`')
  }
  const upstream = behaviour.upstream
  const source: Source =
    upstream !== undefined
      ? typeof upstream === 'string'
        ? new UpstreamSource(upstream, undefined)
        : new UpstreamSource(upstream.url, upstream.caPem)
      : new LayoutSource(behaviour.layout ?? '')
  let faults: Fault[] = []
  let left: number[] = []
  const setFaults = (f: Fault | Fault[] | undefined): void => {
    faults = f === undefined ? [] : Array.isArray(f) ? [...f] : [f]
    left = faults.map((x) => x.times ?? defaultTimes(x))
  }
  setFaults(behaviour.fault)
  const requests: RecordedRequest[] = []
  const targetRequests: RecordedRequest[] = []
  const redirects = new Map<string, { repo: string; digest: string; authorization: string | undefined }>()
  const extraHeaders = behaviour.headers ?? {}

  const pick = (rec: RecordedRequest): Fault | undefined => {
    for (const [i, f] of faults.entries()) {
      if (f.kind === 'paginate') continue
      if ((left[i] ?? 0) > 0 && matches(f.match, rec)) {
        left[i] = (left[i] ?? 0) - 1
        return f
      }
    }
    return undefined
  }

  const sendError = (res: http.ServerResponse, rec: RecordedRequest, e: { status: number; headers: Headers; body: Buffer }): void => {
    rec.status = e.status
    res.writeHead(e.status, { ...e.headers, 'content-length': String(e.body.length) })
    res.end(e.body)
  }

  /** Serves a blob GET, with a body fault or none. */
  const serveBlob = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rec: RecordedRequest,
    fault: Fault | undefined,
    auth: string | undefined,
  ): Promise<void> => {
    const requested = parseRange(req.headers.range)
    const dropFault = faults.find((f): f is Extract<Fault, { kind: 'drop' }> => f.kind === 'drop')
    const rangeMode = dropFault?.range ?? 'honour'
    const honour = requested !== undefined && rangeMode === 'honour'
    const start = honour ? requested.start : 0
    const end = honour ? requested.end : undefined
    const opened = await source.blob(rec.repository ?? '', rec.reference ?? '', auth, start, end)
    if (!opened.ok) {
      sendError(res, rec, opened)
      return
    }
    const length = opened.end - opened.start + 1
    const headers: Headers = {
      'content-type': 'application/octet-stream',
      'docker-content-digest': rec.reference ?? '',
      'accept-ranges': 'bytes',
      etag: `"${rec.reference ?? ''}"`,
    }
    let status = 200
    if (requested !== undefined && rangeMode === 'honour') {
      status = 206
      headers['content-range'] = `bytes ${opened.start}-${opened.end}/${opened.total}`
    } else if (requested !== undefined && rangeMode === 'wrong-start') {
      status = 206
      headers['content-range'] = `bytes 0-${opened.total - 1}/${opened.total}`
    }
    const transforms: Transform[] = []
    let bodyLength = length
    if (fault?.kind === 'wrong-digest') transforms.push(new Corrupt())
    else if (fault?.kind === 'wrong-size') {
      const delta = fault.delta ?? 16
      bodyLength = Math.max(0, length + delta)
      transforms.push(new Resize(Math.min(length, bodyLength), Math.max(0, delta)))
    } else if (fault?.kind === 'drop') {
      const limit = Math.max(0, Math.min(fault.afterBytes ?? Math.floor(length / 2), length - 1))
      transforms.push(new Cut(limit))
      headers.connection = 'close'
      res.once('finish', () => {
        const socket = res.socket
        if (socket === null) return
        if (fault.reset) socket.resetAndDestroy()
        else socket.destroy()
      })
    } else if (fault?.kind === 'slow') transforms.push(new Throttle(fault.chunkSize ?? 1024, fault.intervalMs ?? 100))
    headers['content-length'] = String(bodyLength)
    rec.status = status
    res.writeHead(status, headers)
    if (req.method === 'HEAD') {
      opened.body.destroy()
      res.end()
      return
    }
    res.once('close', () => opened.body.destroy())
    await pipeline([opened.body, ...transforms, new Counter(rec), res] as unknown as [Readable, ...Transform[], http.ServerResponse]).catch(() => undefined)
  }

  const paginate = async (res: http.ServerResponse, rec: RecordedRequest, pageSize: number, auth: string | undefined): Promise<void> => {
    const listed = await source.list(rec.route === 'tags' ? rec.repository : undefined, auth)
    if (!listed.ok) {
      sendError(res, rec, listed)
      return
    }
    const q = new URL(rec.url, 'http://x').searchParams
    const n = Math.max(1, Math.min(Number(q.get('n') ?? pageSize) || pageSize, pageSize))
    const last = q.get('last')
    const sorted = [...listed.items].sort()
    const rest = last === null ? sorted : sorted.filter((x) => x > last)
    const page = rest.slice(0, n)
    const headers: Headers = { 'content-type': 'application/json' }
    if (rest.length > page.length && page.length > 0) {
      const next = `${rec.path}?n=${n}&last=${encodeURIComponent(page[page.length - 1] ?? '')}`
      headers.link = `<${next}>; rel="next"`
    }
    const doc = rec.route === 'tags' ? { name: rec.repository, tags: page } : { repositories: page }
    sendError(res, rec, { status: 200, headers, body: Buffer.from(JSON.stringify(doc)) })
  }

  // The redirect target: another port, so another host for the client.
  const target = http.createServer((req, res) => {
    const rec = newRecord(req)
    rec.route = 'redirected'
    targetRequests.push(rec)
    track(res, rec)
    const token = new URL(rec.url, 'http://x').searchParams.get('token') ?? ''
    const r = redirects.get(token)
    if (r === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      sendError(res, rec, jsonError(403, 'DENIED', 'unknown or expired signature'))
      return
    }
    rec.repository = r.repo
    rec.reference = r.digest
    serveBlob(req, res, rec, undefined, r.authorization).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, rec, jsonError(502, 'UNKNOWN', String(err)))
      else res.destroy()
    })
  })
  const targetPort = await listenLoopback(target)

  const server = http.createServer((req, res) => {
    const rec = newRecord(req)
    requests.push(rec)
    track(res, rec)
    for (const [k, v] of Object.entries(extraHeaders)) res.setHeader(k, v)
    const auth = req.headers.authorization
    void (async () => {
      const paginateFault = faults.find((f): f is Extract<Fault, { kind: 'paginate' }> => f.kind === 'paginate')
      if (paginateFault !== undefined && req.method === 'GET' && (rec.route === 'tags' || rec.route === 'catalog')) {
        await paginate(res, rec, paginateFault.pageSize, auth)
        return
      }
      const fault = pick(rec)
      if (fault !== undefined) rec.fault = fault.kind
      switch (fault?.kind) {
        case 'status':
          req.resume()
          sendError(res, rec, { status: fault.status, headers: fault.headers ?? { 'content-type': 'application/json' }, body: Buffer.from(fault.body ?? '') })
          return
        case 'rate-limit': {
          req.resume()
          const e = jsonError(429, 'TOOMANYREQUESTS', 'You have reached your pull rate limit (injected by the fault server)')
          sendError(res, rec, {
            ...e,
            headers: {
              ...e.headers,
              'retry-after': String(fault.retryAfter ?? 1),
              'ratelimit-limit': '100;w=21600',
              'ratelimit-remaining': '0;w=21600',
              'docker-ratelimit-source': LOOPBACK,
            },
          })
          return
        }
        case 'server-error':
          req.resume()
          sendError(res, rec, jsonError(fault.status ?? 500, 'UNKNOWN', 'injected server error'))
          return
        case 'unauthorized': {
          req.resume()
          const c = await source.challenge(req)
          const e = c.status === 401 ? c : await new LayoutSource('').challenge()
          delete e.headers['content-length']
          // What distribution answers to an expired or bad token.
          const challenge = e.headers['www-authenticate']
          if (typeof challenge === 'string' && /^bearer /i.test(challenge) && !/error=/.test(challenge) && auth !== undefined) {
            e.headers['www-authenticate'] = `${challenge},error="invalid_token"`
          }
          sendError(res, rec, e)
          return
        }
        case 'redirect': {
          req.resume()
          const token = randomBytes(12).toString('hex')
          redirects.set(token, { repo: rec.repository ?? '', digest: rec.reference ?? '', authorization: auth })
          const location = `http://${fault.host ?? LOOPBACK}:${targetPort}/storage/${rec.reference ?? ''}?token=${token}`
          sendError(res, rec, { status: fault.status ?? 307, headers: { location }, body: Buffer.alloc(0) })
          return
        }
        default:
          break
      }
      const isBlobGet = (req.method === 'GET' || req.method === 'HEAD') && (rec.route === 'blob' || rec.route === 'raw-blob')
      if (isBlobGet && (fault !== undefined || req.headers.range !== undefined || source instanceof LayoutSource)) {
        await serveBlob(req, res, rec, fault, auth)
        return
      }
      await source.serve(req, res, rec, new Counter(rec))
    })().catch((err: unknown) => {
      if (!res.headersSent) sendError(res, rec, jsonError(500, 'UNKNOWN', `fault server: ${String(err)}`))
      else res.destroy()
    })
  })
  const port = await listenLoopback(server)
  const host = `${LOOPBACK}:${port}`
  return {
    url: `http://${host}`,
    host,
    port,
    requests,
    redirectTarget: { url: `http://${LOOPBACK}:${targetPort}`, host: `${LOOPBACK}:${targetPort}`, requests: targetRequests },
    get faults() {
      return faults
    },
    setFaults,
    applied: (kind) => requests.filter((r) => r.fault !== undefined && (kind === undefined || r.fault === kind)).length,
    reset() {
      requests.length = 0
      targetRequests.length = 0
      setFaults(faults)
    },
    async stop() {
      await Promise.all([closeServer(server), closeServer(target)])
      if (source instanceof UpstreamSource) source.close()
    },
  }
}
