/**
 * Push: blobs (HEAD to skip what exists, cross-repository mount, POST then PUT — or PATCH
 * chunks then PUT when large — always following the newest `Location`), then manifests
 * (children before their index), then the tag.
 */
import { isNondistributable, parseManifest, type Descriptor, type Digest, type Reference } from '@ctr/oci'
import type { RegistryClient, RegistryRequest } from './client.js'
import { RegistryError } from './errors.js'
import type { ContentSource } from './sink.js'
import { header } from './transport.js'

export interface PushOptions {
  /** Another repository of the same registry that may hold the blobs: they are mounted, not uploaded. */
  mountFrom?: string
  /** Blobs above this many bytes are uploaded in PATCH chunks of this size (default 16 MiB). */
  chunkSize?: number
  /** Blobs uploaded at once (default 3). */
  concurrency?: number
  /** Called after each blob: `'exists'`, `'mounted'` or `'uploaded'`. */
  onBlob?: (desc: Descriptor, how: 'exists' | 'mounted' | 'uploaded') => void
  signal?: AbortSignal
}

export interface PushedImage {
  /** The digest of what the tag now names. */
  digest: Digest
  /** Blobs uploaded, mounted, or already there. */
  uploaded: number
  mounted: number
  existing: number
}

/** Reads a source stream into buffers of `size` bytes (the last one shorter). */
async function* chunks(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = []
  let have = 0
  for await (const c of source) {
    let buf = Buffer.from(c.buffer, c.byteOffset, c.byteLength)
    while (have + buf.length >= size) {
      const take = size - have
      parts.push(buf.subarray(0, take))
      yield Buffer.concat(parts)
      parts = []
      have = 0
      buf = buf.subarray(take)
    }
    if (buf.length > 0) {
      parts.push(buf)
      have += buf.length
    }
  }
  if (have > 0) yield Buffer.concat(parts)
}

async function readAll(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of source) parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength))
  return Buffer.concat(parts)
}

function withDigest(location: string, digest: string): string {
  const u = new URL(location)
  u.searchParams.set('digest', digest)
  return u.toString()
}

class Pusher {
  uploaded = 0
  mounted = 0
  existing = 0
  private readonly scopes: string[]

  constructor(
    private readonly client: RegistryClient,
    private readonly source: ContentSource,
    private readonly target: Reference,
    private readonly options: PushOptions,
  ) {
    this.scopes = [`repository:${target.repository}:pull,push`, ...(options.mountFrom ? [`repository:${options.mountFrom}:pull`] : [])]
  }

  private req(extra: Partial<RegistryRequest>): RegistryRequest {
    return { scopes: this.scopes, mirrors: false, ...(this.options.signal ? { signal: this.options.signal } : {}), ...extra }
  }

  /** Resolves an upload's Location against the registry URL it came from. */
  private location(res: { url: string; headers: Record<string, string | string[] | undefined> }, what: string): string {
    const loc = header(res, 'location')
    if (!loc) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `${what}: the registry sent no Location`, { url: res.url })
    return new URL(loc, res.url).toString()
  }

  async blob(desc: Descriptor): Promise<void> {
    const repo = this.target.repository
    const what = `upload of ${desc.digest} to ${this.target.name}`
    const head = await this.client.request(this.target, `/v2/${repo}/blobs/${desc.digest}`, this.req({ method: 'HEAD' }))
    await head.body.dump().catch(() => undefined)
    if (head.statusCode === 200) {
      this.existing++
      this.options.onBlob?.(desc, 'exists')
      return
    }
    const mount = this.options.mountFrom ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(this.options.mountFrom)}` : ''
    const start = await this.client.request(this.target, `/v2/${repo}/blobs/uploads/${mount}`, this.req({ method: 'POST', headers: { 'content-length': '0' } }))
    if (start.statusCode === 201) {
      await start.body.dump().catch(() => undefined)
      this.mounted++
      this.options.onBlob?.(desc, 'mounted')
      return
    }
    if (start.statusCode !== 202) await this.client.failure(start, what)
    await start.body.dump().catch(() => undefined)
    let location = this.location(start, what)
    const chunkSize = this.options.chunkSize ?? 16 * 2 ** 20
    let done: Awaited<ReturnType<RegistryClient['request']>>
    if (desc.size <= chunkSize) {
      // One PUT with the whole blob: the simplest upload every registry takes.
      const body = await readAll(this.source.read(desc))
      done = await this.client.request(this.target, withDigest(location, desc.digest), this.req({ method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } }))
    } else {
      let offset = 0
      for await (const chunk of chunks(this.source.read(desc), chunkSize)) {
        const res = await this.client.request(this.target, location, this.req({
          method: 'PATCH',
          body: chunk,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(chunk.length), 'content-range': `${offset}-${offset + chunk.length - 1}` },
        }))
        if (res.statusCode !== 202) await this.client.failure(res, `${what} (chunk at ${offset})`)
        await res.body.dump().catch(() => undefined)
        location = this.location(res, what) // always the newest Location
        offset += chunk.length
      }
      done = await this.client.request(this.target, withDigest(location, desc.digest), this.req({ method: 'PUT', headers: { 'content-length': '0' } }))
    }
    if (done.statusCode !== 201) await this.client.failure(done, what)
    await done.body.dump().catch(() => undefined)
    const stored = header(done, 'docker-content-digest')
    if (stored && stored !== desc.digest) throw new RegistryError('ERR_REGISTRY_DIGEST_MISMATCH', `${what}: the registry stored ${stored}`, { url: done.url })
    this.uploaded++
    this.options.onBlob?.(desc, 'uploaded')
  }

  async blobs(descs: Descriptor[]): Promise<void> {
    const queue = [...descs]
    let failed: unknown
    const worker = async () => {
      for (let d = queue.shift(); d && failed === undefined; d = queue.shift()) {
        try {
          await this.blob(d)
        } catch (err) {
          failed ??= err
        }
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency ?? 3, 16)) }, worker))
    if (failed !== undefined) throw failed
  }

  async manifest(desc: Descriptor, reference: string): Promise<Digest> {
    const bytes = await readAll(this.source.read(desc))
    const parsed = parseManifest(bytes, desc.mediaType)
    if (parsed.kind === 'index') {
      // Children before their index: a registry may refuse an index whose manifests it lacks.
      for (const child of parsed.value.manifests) await this.manifest(child as Descriptor, child.digest)
    } else {
      // Foreign (non-distributable) layers stay where their urls point, as Docker does.
      await this.blobs([parsed.value.config as Descriptor, ...(parsed.value.layers as Descriptor[]).filter((l) => !isNondistributable(l.mediaType))])
    }
    const res = await this.client.request(this.target, `/v2/${this.target.repository}/manifests/${reference}`, this.req({
      method: 'PUT',
      body: bytes,
      headers: { 'content-type': parsed.mediaType, 'content-length': String(bytes.length) },
    }))
    if (res.statusCode !== 201) await this.client.failure(res, `push of manifest ${desc.digest} to ${this.target.name}:${reference}`)
    await res.body.dump().catch(() => undefined)
    const stored = header(res, 'docker-content-digest')
    if (stored && stored !== desc.digest) throw new RegistryError('ERR_REGISTRY_DIGEST_MISMATCH', `manifest ${desc.digest}: the registry stored ${stored}`, { url: res.url })
    return desc.digest
  }
}

export async function pushImage(client: RegistryClient, source: ContentSource, name: string, target: Reference, options: PushOptions): Promise<PushedImage> {
  const top = await source.resolve(name)
  if (!top) throw new RegistryError('ERR_REGISTRY_NOT_FOUND', `the source has no image named ${name}`)
  const pusher = new Pusher(client, source, target, options)
  const digest = await pusher.manifest(top, target.digest ?? target.tag ?? 'latest')
  return { digest, uploaded: pusher.uploaded, mounted: pusher.mounted, existing: pusher.existing }
}
