/**
 * The distribution API client: resolve references to manifests, stream verified blobs
 * (resuming dropped connections), pull into any {@link ContentSink}, list tags and
 * repositories, delete manifests.
 */
import {
  DigestMismatchError,
  BlobVerifier,
  MANIFEST_ACCEPT,
  checkDocument,
  MAX_MANIFEST_SIZE,
  OciError,
  digestOf,
  hostPlatform,
  isNondistributable,
  apiHost,
  parseManifest,
  parseImageConfig,
  parsePlatform,
  parseReference,
  selectManifest,
  splitDigest,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Platform,
  type Reference,
} from '@ctr/oci'
import * as z from 'zod/mini'
import { Authenticator } from './auth/authenticator.js'
import { credentialsFromDockerConfig, type Credentials } from './auth/credentials.js'
import { RegistryError, codeForStatus } from './errors.js'
import { VERIFIED, type ContentSink, type ContentSource, type VerifiedStream } from './sink.js'
import { pushImage, type PushOptions, type PushedImage } from './push.js'
import { Transport, header, rateLimitOf, type HttpRequest, type HttpResponse, type TransportOptions } from './transport.js'

export interface RegistryClientOptions extends TransportOptions {
  /** Credentials per registry host (`ghcr.io`, `127.0.0.1:5000`); they win over docker config. */
  auth?: Record<string, Credentials>
  /** Path of a Docker config.json to read credentials from, or false for none (default: Docker's own path). */
  dockerConfig?: string | false
  /** Mirrors tried in order before the registry itself, for reads: `{ 'docker.io': ['mirror.local:5000'] }`. */
  mirrors?: Record<string, string[]>
}

/** A manifest as fetched: its bytes, digest and parsed form. */
export interface FetchedManifest {
  digest: Digest
  mediaType: string
  size: number
  bytes: Buffer
  parsed: ReturnType<typeof parseManifest>
}

/** What {@link RegistryClient.resolve} finds. */
export interface ResolvedImage {
  reference: Reference
  /** The platform manifest's digest. */
  digest: Digest
  /** The platform manifest. */
  manifest: FetchedManifest & { parsed: { kind: 'manifest' } }
  /** The index (or manifest list) the reference named, when it named one. */
  index?: FetchedManifest & { parsed: { kind: 'index' } }
  /** The platform picked from the index. */
  platform?: Platform
}

/** Progress of a pull. */
export interface PullProgress {
  /** The blob this event is about. */
  digest: string
  /** `'config'`, `'layer'` or `'manifest'`. */
  kind: 'config' | 'layer' | 'manifest'
  /** Bytes of this blob done, and its size. */
  bytes: number
  size: number
  /** True when the blob was already in the sink. */
  skipped?: boolean
  /** Bytes done and to do over the whole pull. */
  totalBytes: number
  totalSize: number
}

export interface PullOptions {
  into: ContentSink
  /** `'linux/arm64/v8'` or a Platform; default this host's. */
  platform?: string | Platform
  /** Blobs downloaded at once (default 3). */
  concurrency?: number
  onProgress?: (p: PullProgress) => void
  signal?: AbortSignal
}

/** What {@link RegistryClient.pull} returns. */
export interface PulledImage {
  reference: Reference
  /** The platform manifest's digest. */
  digest: Digest
  manifest: ResolvedImage['manifest']['parsed']['value']
  config: ImageConfig
  /** The index the reference named, if any (it is stored in the sink too). */
  indexDigest?: Digest
}

export type RegistryRequest = HttpRequest & { scopes: string[]; mirrors?: boolean }

/** A buffer as the async iterable a sink takes. */
async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes
}

/**
 * Hands `done` a copy of what flows through a verified stream (the config: small), once the
 * stream has ended — that is, verified. The stream keeps its {@link VERIFIED} mark.
 */
function keepCopy(stream: VerifiedStream<Buffer>, done: (copy: Buffer) => void): AsyncGenerator<Buffer> & VerifiedStream<Buffer> {
  async function* copy() {
    const chunks: Buffer[] = []
    for await (const c of stream) {
      chunks.push(c)
      yield c
    }
    done(Buffer.concat(chunks))
  }
  return Object.assign(copy(), { [VERIFIED]: stream[VERIFIED] })
}

/** A page of `/v2/<name>/tags/list` (distribution answers `"tags": null` for none). */
const TagListSchema = z.looseObject({ tags: z.nullish(z.array(z.string())) })
/** A page of `/v2/_catalog`. */
const CatalogSchema = z.looseObject({ repositories: z.nullish(z.array(z.string())) })

/** How many times a dropped blob download is resumed before giving up. */
const MAX_RESUMES = 5

/**
 * A client for OCI distribution registries.
 *
 * @example
 * ```ts
 * import { RegistryClient, OciLayout } from '@ctr/registry-client'
 * const client = new RegistryClient({ insecure: ['127.0.0.1:5000'] })
 * const img = await client.pull('127.0.0.1:5000/library/busybox:multi', {
 *   into: await OciLayout.open('/tmp/busybox-oci'),
 *   platform: 'linux/arm64/v8',
 *   onProgress: (p) => console.log(p.digest, p.bytes, p.size),
 * })
 * console.log(img.digest, img.config.config?.Cmd)
 * ```
 */
export class RegistryClient {
  private readonly transport: Transport
  private readonly auth: Authenticator
  private readonly mirrors: Record<string, string[]>

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.transport = new Transport(options)
    this.mirrors = options.mirrors ?? {}
    this.auth = new Authenticator(this.transport, (registry) => this.credentialsFor(registry))
  }

  /** Token requests made so far (every other request reused a cached token). */
  get tokenRequests(): number {
    return this.auth.tokenRequests
  }

  /** Closes idle connections. */
  close(): Promise<void> {
    return this.transport.close()
  }

  private async credentialsFor(registry: string): Promise<Credentials | undefined> {
    const given = this.options.auth?.[registry]
    if (given) return given
    if (this.options.dockerConfig === false) return undefined
    return credentialsFromDockerConfig(registry, this.options.dockerConfig)
  }

  /**
   * One request to a repository's API, authenticated: a cached token is sent up front; a 401
   * is answered once with a fresh token (or Basic credentials). Reads go through the
   * registry's mirrors first when it has any.
   */
  private async call(ref: Reference, path: string, req: RegistryRequest): Promise<HttpResponse> {
    // An absolute URL (an upload's Location) goes where it says, with our credentials only if
    // that is the registry itself.
    if (/^https?:\/\//.test(path)) return this.callHost(new URL(path).host, ref.registry, path, req)
    const hosts = [...(req.mirrors !== false && (req.method ?? 'GET') === 'GET' ? this.mirrors[ref.registry] ?? [] : []), apiHost(ref)]
    let lastError: unknown
    for (const [i, host] of hosts.entries()) {
      const isLast = i === hosts.length - 1
      try {
        const res = await this.callHost(host, ref.registry, path, req)
        if (!isLast && (res.statusCode === 404 || res.statusCode >= 500 || res.statusCode === 401)) {
          await res.body.dump().catch(() => undefined)
          continue // a mirror that does not have it, or is broken: try the next
        }
        return res
      } catch (err) {
        if (isLast || (err as RegistryError).code === 'ERR_REGISTRY_ABORTED') throw err
        lastError = err
      }
    }
    throw lastError
  }

  private async callHost(host: string, registry: string, path: string, req: RegistryRequest): Promise<HttpResponse> {
    const url = /^https?:\/\//.test(path) ? path : `${this.transport.baseUrl(host)}${path}`
    const send = (authorization: string | undefined) =>
      this.transport.send(url, { ...req, headers: { ...req.headers, ...(authorization ? { authorization } : {}) } })
    const authKey = host === apiHost(registry) ? registry : host
    let res = await send(await this.auth.headerFor(authKey, req.scopes, req.signal))
    if (res.statusCode === 401) {
      const challenge = header(res, 'www-authenticate')
      await res.body.dump().catch(() => undefined)
      const authorization = await this.auth.onUnauthorized(authKey, challenge, req.scopes, req.signal)
      if (authorization) res = await send(authorization)
      else res = await send(undefined)
    }
    return res
  }

  /** Throws the RegistryError a non-success response means, with the registry's own error text. */
  private async fail(res: HttpResponse, what: string): Promise<never> {
    const text = await res.body.text().catch(() => '')
    let details: RegistryError['details']
    try {
      details = (JSON.parse(text) as { errors?: RegistryError['details'] }).errors
    } catch {
      details = undefined
    }
    const reason = details?.map((d) => `${d?.code ?? ''} ${d?.message ?? ''}`.trim()).join('; ') || text.slice(0, 200)
    const rateLimit = rateLimitOf(res)
    throw new RegistryError(codeForStatus(res.statusCode), `${what}: HTTP ${res.statusCode}${reason ? ` (${reason})` : ''}`, {
      status: res.statusCode,
      url: res.url,
      ...(details ? { details } : {}),
      ...(rateLimit ? { rateLimit } : {}),
    })
  }

  /** @internal Used by the push module: an authenticated request. */
  request(ref: Reference, path: string, req: RegistryRequest): Promise<HttpResponse> {
    return this.call(ref, path, req)
  }

  /** @internal Used by the push module: turns a failed response into a RegistryError. */
  failure(res: HttpResponse, what: string): Promise<never> {
    return this.fail(res, what)
  }

  /**
   * Pushes an image from a content source (an {@link OciLayout}) to `target`: blobs first
   * (skipping those the registry has, mounting from `mountFrom` when given, chunked when
   * large), then manifests (an index's children before the index), then the tag.
   */
  async push(source: ContentSource, name: string, target: string | Reference, options: PushOptions = {}): Promise<PushedImage> {
    return pushImage(this, source, name, RegistryClient.ref(target), options)
  }

  private static ref(ref: string | Reference): Reference {
    try {
      return typeof ref === 'string' ? parseReference(ref) : ref
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_INVALID', (err as Error).message, { cause: err })
    }
  }

  /**
   * Fetches one manifest (or index) by tag or digest, and checks it: the body's digest must
   * equal the digest asked for, and `Docker-Content-Digest` when the registry sends one.
   */
  async manifest(refIn: string | Reference, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const ref = RegistryClient.ref(refIn)
    const what = `manifest ${ref.toString()}`
    const res = await this.call(ref, `/v2/${ref.repository}/manifests/${ref.manifestReference}`, {
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [`repository:${ref.repository}:pull`],
      ...(options.signal ? { signal: options.signal } : {}),
    })
    if (res.statusCode !== 200) await this.fail(res, what)
    const declared = Number(header(res, 'content-length') ?? NaN)
    if (declared > MAX_MANIFEST_SIZE) {
      await res.body.dump().catch(() => undefined)
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what} is ${declared} bytes, above the ${MAX_MANIFEST_SIZE}-byte limit`, { url: res.url })
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > MAX_MANIFEST_SIZE) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what} exceeds ${MAX_MANIFEST_SIZE} bytes`, { url: res.url })
      chunks.push(chunk as Buffer)
    }
    const bytes = Buffer.concat(chunks)
    const algorithm = ref.digest ? splitDigest(ref.digest).algorithm : 'sha256'
    const digest = digestOf(bytes, algorithm)
    if (ref.digest && digest !== ref.digest) {
      throw new RegistryError('ERR_REGISTRY_DIGEST_MISMATCH', `${what}: the body's digest is ${digest}`, { url: res.url })
    }
    const claimed = header(res, 'docker-content-digest')
    if (claimed && claimed.startsWith(`${algorithm}:`) && claimed !== digest) {
      throw new RegistryError('ERR_REGISTRY_DIGEST_MISMATCH', `${what}: Docker-Content-Digest says ${claimed}, the body is ${digest}`, { url: res.url })
    }
    let parsed: ReturnType<typeof parseManifest>
    try {
      parsed = parseManifest(bytes, header(res, 'content-type'))
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what}: ${(err as Error).message}`, { url: res.url, cause: err })
    }
    return { digest, mediaType: parsed.mediaType, size: bytes.length, bytes, parsed }
  }

  /**
   * Resolves a reference to the manifest for one platform: fetches what the reference names
   * and, if that is an index, picks the platform (default this host's; attestation entries
   * are never picked) and fetches its manifest.
   */
  async resolve(refIn: string | Reference, options: { platform?: string | Platform; signal?: AbortSignal } = {}): Promise<ResolvedImage> {
    const ref = RegistryClient.ref(refIn)
    const top = await this.manifest(ref, options)
    if (top.parsed.kind === 'manifest') {
      return { reference: ref, digest: top.digest, manifest: top as ResolvedImage['manifest'] }
    }
    let want: Platform
    try {
      want = options.platform === undefined ? hostPlatform() : typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_INVALID', (err as Error).message, { cause: err })
    }
    let chosen: Descriptor
    try {
      chosen = selectManifest(top.parsed.value, want)
    } catch (err) {
      if (err instanceof OciError) throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `${ref.toString()}: ${err.message}`, { cause: err })
      throw err
    }
    const child = await this.manifest(ref.withDigest(chosen.digest), options)
    if (child.parsed.kind !== 'manifest') {
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${ref.toString()}: index entry ${chosen.digest} is itself an index`)
    }
    return {
      reference: ref,
      digest: child.digest,
      manifest: child as ResolvedImage['manifest'],
      index: top as ResolvedImage['index'] & object,
      platform: want,
    }
  }

  /**
   * A blob as a verified stream: size and digest are checked while it flows, and the stream
   * errors at its end if they are wrong (it carries {@link VERIFIED}, so a sink need not hash
   * it again). A dropped connection is resumed with `Range` (only a 206 whose Content-Range
   * starts where we asked is accepted). Layers with foreign `urls` are fetched from there
   * first, never with the registry's credentials.
   */
  blob(refIn: string | Reference, desc: Descriptor, options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): AsyncGenerator<Buffer> & VerifiedStream<Buffer> {
    return Object.assign(this.blobChunks(refIn, desc, options), { [VERIFIED]: { digest: desc.digest, size: desc.size } })
  }

  private async *blobChunks(refIn: string | Reference, desc: Descriptor, options: { signal?: AbortSignal; onBytes?: (n: number) => void }): AsyncGenerator<Buffer> {
    const ref = RegistryClient.ref(refIn)
    const what = `blob ${desc.digest} of ${ref.name}`
    const verifier = new BlobVerifier({ digest: desc.digest, size: desc.size, what })
    let offset = 0
    let resumes = 0
    const foreign = isNondistributable(desc.mediaType) ? (desc.urls ?? []).filter((u) => /^https?:\/\//.test(u)) : []
    for (;;) {
      const range = offset > 0 ? { range: `bytes=${offset}-` } : undefined
      const res = await this.openBlob(ref, desc, foreign, range, options.signal)
      if (offset > 0) {
        const cr = header(res, 'content-range') ?? ''
        if (res.statusCode !== 206 || !new RegExp(`^bytes ${offset}-`).test(cr)) {
          await res.body.dump().catch(() => undefined)
          throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what}: asked to resume at byte ${offset}, got HTTP ${res.statusCode} ${cr ? `Content-Range "${cr}"` : 'without Content-Range'}`, {
            status: res.statusCode,
            url: res.url,
          })
        }
      } else if (res.statusCode !== 200) {
        await this.fail(res, what)
      }
      try {
        for await (const buf of res.body) {
          try {
            verifier.update(buf)
          } catch (err) {
            res.body.destroy()
            throw this.verificationError(err, what)
          }
          offset += buf.length
          options.onBytes?.(buf.length)
          yield buf
        }
        break
      } catch (err) {
        if (err instanceof RegistryError || err instanceof OciError) throw err
        if (options.signal?.aborted) throw new RegistryError('ERR_REGISTRY_ABORTED', `${what}: aborted`, { cause: err })
        if (resumes++ >= MAX_RESUMES) throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${what}: connection lost at byte ${offset} ${resumes} times`, { cause: err })
        // dropped mid-body: ask for the rest
      }
    }
    try {
      verifier.verify()
    } catch (err) {
      throw this.verificationError(err, what)
    }
  }

  private verificationError(err: unknown, what: string): RegistryError {
    const code = err instanceof DigestMismatchError ? 'ERR_REGISTRY_DIGEST_MISMATCH' : 'ERR_REGISTRY_SIZE_MISMATCH'
    return new RegistryError(code, `${what}: ${(err as Error).message}`, { cause: err })
  }

  private async openBlob(ref: Reference, desc: Descriptor, foreign: string[], range: Record<string, string> | undefined, signal?: AbortSignal): Promise<HttpResponse> {
    for (const url of foreign) {
      try {
        const res = await this.transport.send(url, { ...(range ? { headers: range } : {}), ...(signal ? { signal } : {}) })
        if (res.statusCode === 200 || res.statusCode === 206) return res
        await res.body.dump().catch(() => undefined)
      } catch (err) {
        if ((err as RegistryError).code === 'ERR_REGISTRY_ABORTED') throw err
      }
    }
    return this.call(ref, `/v2/${ref.repository}/blobs/${desc.digest}`, {
      scopes: [`repository:${ref.repository}:pull`],
      ...(range ? { headers: range } : {}),
      ...(signal ? { signal } : {}),
    })
  }

  /**
   * Pulls an image into a sink: the index (if the reference names one), the platform
   * manifest, its config and layers — each verified — with bounded concurrency, progress
   * and abort. Blobs the sink has are skipped.
   */
  async pull(refIn: string | Reference, options: PullOptions): Promise<PulledImage> {
    const ref = RegistryClient.ref(refIn)
    const resolved = await this.resolve(ref, { ...(options.platform !== undefined ? { platform: options.platform } : {}), ...(options.signal ? { signal: options.signal } : {}) })
    const manifest = resolved.manifest.parsed.value
    const blobs: { desc: Descriptor; kind: 'config' | 'layer' }[] = [
      { desc: manifest.config as Descriptor, kind: 'config' },
      ...manifest.layers.map((l) => ({ desc: l as Descriptor, kind: 'layer' as const })),
    ]
    const totalSize = blobs.reduce((n, b) => n + b.desc.size, 0)
    let totalBytes = 0
    const progress = (p: Omit<PullProgress, 'totalBytes' | 'totalSize'>) => options.onProgress?.({ ...p, totalBytes, totalSize })

    // One failure stops the other downloads, and the pull settles only once every worker
    // has: a sink is never left with a download still writing (or a temporary) behind it.
    const stop = new AbortController()
    const onOuterAbort = () => stop.abort(options.signal?.reason)
    options.signal?.addEventListener('abort', onOuterAbort)
    if (options.signal?.aborted) stop.abort(options.signal.reason)
    const queue = [...blobs]
    let firstError: unknown
    let configBytes: Buffer | undefined
    const worker = async () => {
      for (let next = queue.shift(); next && !stop.signal.aborted; next = queue.shift()) {
        const { desc, kind } = next
        try {
          if (await options.into.has(desc)) {
            totalBytes += desc.size
            progress({ digest: desc.digest, kind, bytes: desc.size, size: desc.size, skipped: true })
            continue
          }
          let bytes = 0
          let stream = this.blob(ref, desc, {
            signal: stop.signal,
            onBytes: (n) => {
              bytes += n
              totalBytes += n
              progress({ digest: desc.digest, kind, bytes, size: desc.size })
            },
          })
          if (kind === 'config') stream = keepCopy(stream, (copy) => (configBytes = copy))
          await options.into.write(desc, stream, stop.signal)
        } catch (err) {
          firstError ??= err
          stop.abort(err)
        }
      }
    }
    const concurrency = Math.max(1, Math.min(options.concurrency ?? 3, 16))
    try {
      await Promise.all(Array.from({ length: concurrency }, worker))
    } finally {
      options.signal?.removeEventListener('abort', onOuterAbort)
    }
    if (firstError !== undefined || options.signal?.aborted) {
      if (options.signal?.aborted && !(firstError instanceof RegistryError && firstError.code !== 'ERR_REGISTRY_ABORTED')) {
        throw new RegistryError('ERR_REGISTRY_ABORTED', `pull of ${ref.toString()}: aborted`, { cause: options.signal.reason })
      }
      if (firstError instanceof RegistryError) throw firstError
      const e = firstError as Error
      if (e?.name === 'AbortError') throw new RegistryError('ERR_REGISTRY_ABORTED', `pull of ${ref.toString()}: aborted`, { cause: e })
      throw firstError
    }

    // Manifests last: a sink never names an image whose blobs it does not have.
    const manifestDesc: Descriptor = { mediaType: resolved.manifest.mediaType, digest: resolved.digest, size: resolved.manifest.size }
    await options.into.write(manifestDesc, once(resolved.manifest.bytes), options.signal)
    progress({ digest: resolved.digest, kind: 'manifest', bytes: resolved.manifest.size, size: resolved.manifest.size })
    let top = manifestDesc
    if (resolved.index) {
      top = { mediaType: resolved.index.mediaType, digest: resolved.index.digest, size: resolved.index.size }
      await options.into.write(top, once(resolved.index.bytes), options.signal)
    }
    await options.into.tag(ref.toString(), top)

    let config: ImageConfig
    try {
      if (!configBytes) {
        // The sink had it: fetch it again rather than ask the sink (a sink need not be readable).
        const chunks: Buffer[] = []
        for await (const c of this.blob(ref, manifest.config as Descriptor, options.signal ? { signal: options.signal } : {})) chunks.push(c)
        configBytes = Buffer.concat(chunks)
      }
      config = parseImageConfig(configBytes)
    } catch (err) {
      if (err instanceof RegistryError) throw err
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `config of ${ref.toString()}: ${(err as Error).message}`, { cause: err })
    }
    return {
      reference: ref,
      digest: resolved.digest,
      manifest,
      config,
      ...(resolved.index ? { indexDigest: resolved.index.digest } : {}),
    }
  }

  /** Every tag of a repository, following `Link` pagination. */
  async tags(refIn: string | Reference, options: { pageSize?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const ref = RegistryClient.ref(refIn)
    return this.paginate(ref, `/v2/${ref.repository}/tags/list?n=${options.pageSize ?? 1000}`, 'tags', [`repository:${ref.repository}:pull`], options.signal)
  }

  /** Every repository of a registry (`_catalog`), following `Link` pagination. */
  async catalog(registry: string, options: { pageSize?: number; signal?: AbortSignal } = {}): Promise<string[]> {
    const ref = RegistryClient.ref(`${registry}/catalog-probe`)
    return this.paginate(ref, `/v2/_catalog?n=${options.pageSize ?? 1000}`, 'repositories', ['registry:catalog:*'], options.signal)
  }

  private async paginate(ref: Reference, first: string, key: 'tags' | 'repositories', scopes: string[], signal?: AbortSignal): Promise<string[]> {
    const out: string[] = []
    const seen = new Set<string>()
    for (let path: string | undefined = first; path; ) {
      if (seen.has(path)) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `pagination loops at ${path}`)
      seen.add(path)
      const res = await this.call(ref, path, { scopes, ...(signal ? { signal } : {}) })
      if (res.statusCode !== 200) await this.fail(res, `${key} of ${ref.registry}/${key === 'tags' ? ref.repository : ''}`)
      let page: string[] | null | undefined
      try {
        const json = await res.body.json()
        page = key === 'tags' ? checkDocument(TagListSchema, json, { name: 'tags' }).tags : checkDocument(CatalogSchema, json, { name: 'catalog' }).repositories
      } catch (err) {
        throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${key} of ${ref.registry}: ${(err as Error).message}`, { url: res.url, cause: err })
      }
      out.push(...(page ?? []))
      const link = header(res, 'link')
      const next = link?.match(/<([^>]+)>\s*;\s*rel="?next"?/)?.[1]
      path = next ? (next.startsWith('/') ? next : new URL(next).pathname + new URL(next).search) : undefined
    }
    return out
  }

  /**
   * The manifests that name `ref` as their `subject` (signatures, SBOMs, attestations): the
   * referrers API, or — where the registry lacks it (a 404, as distribution 2.8 answers) —
   * the tag-schema fallback (`<alg>-<hex>` tagging an index of referrers).
   */
  async referrers(refIn: string | Reference, options: { artifactType?: string; signal?: AbortSignal } = {}): Promise<Descriptor[]> {
    const ref = RegistryClient.ref(refIn)
    const digest = ref.digest ?? (await this.manifest(ref, options)).digest
    const filter = (list: Descriptor[]) => (options.artifactType ? list.filter((d) => d.artifactType === options.artifactType) : list)
    const query = options.artifactType ? `?artifactType=${encodeURIComponent(options.artifactType)}` : ''
    const res = await this.call(ref, `/v2/${ref.repository}/referrers/${digest}${query}`, {
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      scopes: [`repository:${ref.repository}:pull`],
      ...(options.signal ? { signal: options.signal } : {}),
    })
    const type = header(res, 'content-type') ?? ''
    if (res.statusCode === 200 && type.includes('application/vnd.oci.image.index.v1+json')) {
      const parsed = parseManifest(Buffer.from(await res.body.arrayBuffer()), 'application/vnd.oci.image.index.v1+json')
      return filter(parsed.kind === 'index' ? (parsed.value.manifests as Descriptor[]) : [])
    }
    if (res.statusCode !== 404 && res.statusCode !== 200) await this.fail(res, `referrers of ${ref.name}@${digest}`)
    await res.body.dump().catch(() => undefined)
    // Fallback: the tag schema.
    const { algorithm, hex } = splitDigest(digest)
    try {
      const index = await this.manifest(ref.withTag(`${algorithm}-${hex}`), options)
      return filter(index.parsed.kind === 'index' ? (index.parsed.value.manifests as Descriptor[]) : [])
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_NOT_FOUND') return []
      throw err
    }
  }

  /** Deletes a manifest (by digest; a tag is resolved to its digest first). */
  async deleteManifest(refIn: string | Reference, options: { signal?: AbortSignal } = {}): Promise<Digest> {
    const ref = RegistryClient.ref(refIn)
    const digest = ref.digest ?? (await this.manifest(ref, options)).digest
    const res = await this.call(ref, `/v2/${ref.repository}/manifests/${digest}`, {
      method: 'DELETE',
      scopes: [`repository:${ref.repository}:delete`],
      ...(options.signal ? { signal: options.signal } : {}),
    })
    if (res.statusCode !== 202 && res.statusCode !== 200) await this.fail(res, `delete ${ref.name}@${digest}`)
    await res.body.dump().catch(() => undefined)
    return digest
  }
}
