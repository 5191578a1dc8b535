/**
 * The content-addressed blob store: `blobs/<alg>/<hex>` under a store root, every blob verified
 * (digest and size) before it enters, written crash-safely (a temporary under `tmp/`, fsync,
 * rename, fsync of the directory).
 */
import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import type * as z from 'zod'
import {
  BlobVerifier,
  DigestMismatchError,
  OciError,
  SizeMismatchError,
  digestOf,
  isDigest,
  parseDocument,
  parseManifest,
  splitDigest,
  MAX_MANIFEST_SIZE,
  type Descriptor,
  type Digest,
  type DigestAlgorithm,
  type ParsedManifest,
} from '@ctr/oci'
import type { ContentSink, ContentSource } from '@ctr/registry-client'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import { fsyncDir, removeTemporaries, tempName } from '../fs/atomic.js'
import type { StorePaths } from '../paths.js'

/** The largest JSON document {@link ContentStore.readBytes} reads by default: 4 MiB. */
export const MAX_DOCUMENT_SIZE = MAX_MANIFEST_SIZE

const ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512']

/**
 * Where {@link ContentStore.tag} and {@link ContentStore.resolve} find names: an
 * {@link ImageIndex} fits. Kept as an interface so the content layer does not depend on the
 * image layer.
 */
export interface RefStore {
  set(ref: string, desc: Descriptor): Promise<unknown>
  get(ref: string): Promise<{ descriptor: Descriptor } | undefined>
}

/** Options of {@link ContentStore.open}. */
export interface ContentStoreOptions {
  /**
   * Flush each blob (and its directory entry) to disk before it counts as stored (default
   * true). Off is faster — skopeo does not flush either — but a power loss may then leave a
   * truncated blob under its name.
   */
  fsync?: boolean
  /**
   * The names behind {@link ContentStore.tag} and {@link ContentStore.resolve} (an
   * {@link ImageIndex}). Without one, `tag` throws `ERR_STORE_INVALID` and `resolve` knows
   * no names.
   */
  refs?: RefStore
}

/** Options of {@link ContentStore.ingest}. */
export interface IngestOptions {
  /** The media type of the returned descriptor (default `application/octet-stream`). */
  mediaType?: string
  /** The digest algorithm (default `sha256`). */
  algorithm?: DigestAlgorithm
  signal?: AbortSignal
}

function isAbort(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'AbortError'
}

function isFsError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | undefined
  return typeof e?.code === 'string' && typeof e.syscall === 'string'
}

/** The name of a document in error messages, from its media type. */
function documentName(mediaType: string | undefined): string {
  if (mediaType === undefined) return 'document'
  if (/manifest\.list|image\.index/.test(mediaType)) return 'index'
  if (/manifest/.test(mediaType)) return 'manifest'
  if (/config|container\.image/.test(mediaType)) return 'config'
  return 'document'
}

/** Turns an `OciError` about a document into `ERR_STORE_BAD_IMAGE`, keeping the field path. */
function badImage(err: unknown, digest: string): never {
  if (err instanceof OciError) {
    const code = err.code === 'ERR_OCI_UNSUPPORTED_MEDIA_TYPE' ? 'ERR_STORE_UNSUPPORTED' : 'ERR_STORE_BAD_IMAGE'
    throw new StoreError(code, `blob ${digest}: ${err.message}`, { digest, ...(err.path !== undefined ? { field: err.path } : {}), cause: err })
  }
  throw err
}

/**
 * The content store: verified blobs by digest. It is a {@link ContentSink} (so
 * `client.pull(ref, { into: content })` writes straight into it) and a {@link ContentSource}
 * (so `client.push(…)` can read from it).
 *
 * Names (`tag`, `resolve`) are not the blob store's business: they are delegated to the
 * {@link RefStore} given at open (the image index); the `ImageStore` facade wires the two.
 *
 * Every blob is verified while it is written and enters `blobs/` by a rename only once its
 * digest and size are right; a failed, aborted or crashed write leaves at most a temporary in
 * `tmp/`, which the next {@link ContentStore.open} removes.
 *
 * @example
 * ```ts
 * const paths = new StorePaths('/var/lib/ctr')
 * const content = await ContentStore.open(paths, { refs: await ImageIndex.load(paths) })
 * await client.pull('alpine:3.20', { into: content })
 * const desc = await content.putJson(MediaType.OciConfig, { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })
 * const config = await content.readJson(desc, ImageConfigSchema)
 * ```
 */
export class ContentStore implements ContentSink, ContentSource {
  readonly #durable: boolean
  #refs: RefStore | undefined

  private constructor(
    readonly paths: StorePaths,
    options: ContentStoreOptions,
  ) {
    this.#durable = options.fsync ?? true
    this.#refs = options.refs
  }

  /**
   * Opens the store under `paths.root`: creates `blobs/sha256/` and `tmp/`, and removes the
   * temporaries a crash left (those of processes that no longer run).
   *
   * @example
   * ```ts
   * const content = await ContentStore.open(new StorePaths('/tmp/ctr-store'), { fsync: false })
   * ```
   */
  static async open(paths: StorePaths, options: ContentStoreOptions = {}): Promise<ContentStore> {
    for (const dir of [path.join(paths.blobs, 'sha256'), paths.tmp]) {
      try {
        await fs.mkdir(dir, { recursive: true })
      } catch (err) {
        throw ioError('create directory', dir, err)
      }
    }
    await removeTemporaries(paths.tmp)
    for (const alg of ALGORITHMS) await removeTemporaries(path.join(paths.blobs, alg))
    return new ContentStore(paths, options)
  }

  /** Whether blobs are flushed to disk before they count as stored. */
  get fsync(): boolean {
    return this.#durable
  }

  /** Sets (or replaces) where {@link ContentStore.tag} and {@link ContentStore.resolve} go. */
  setRefs(refs: RefStore | undefined): void {
    this.#refs = refs
  }

  /**
   * The path of a blob (whether or not it is there). Throws `ERR_STORE_INVALID` for a
   * malformed digest, so a digest can never name a path outside `blobs/`.
   *
   * @example
   * ```ts
   * content.path('sha256:e3b0…') // '/var/lib/ctr/blobs/sha256/e3b0…'
   * ```
   */
  path(digest: string): string {
    return this.paths.blob(checkDigest(digest))
  }

  /**
   * Whether the blob is stored (with the descriptor's size, when it has one).
   *
   * @example
   * ```ts
   * if (!(await content.has(desc))) await content.write(desc, stream)
   * ```
   */
  async has(desc: Descriptor | string): Promise<boolean> {
    const digest = typeof desc === 'string' ? desc : desc.digest
    const size = typeof desc === 'string' ? undefined : desc.size
    try {
      const st = await fs.stat(this.path(digest))
      return st.isFile() && (size === undefined || st.size === size)
    } catch (err) {
      if (err instanceof StoreError) throw err
      return false
    }
  }

  /**
   * The size of a stored blob; `ERR_STORE_NOT_FOUND` when it is not there.
   *
   * @example
   * ```ts
   * await content.size(desc.digest) // 2814446
   * ```
   */
  async size(digest: string): Promise<number> {
    const p = this.path(digest)
    try {
      return (await fs.stat(p)).size
    } catch (err) {
      throw notFoundOr(err, digest, p)
    }
  }

  /**
   * Stores a blob whose descriptor is known: the data streams into a temporary in `tmp/`,
   * verified chunk by chunk (an overlong stream fails as soon as it passes `desc.size`), then
   * fsynced and renamed to `blobs/<alg>/<hex>`. A blob already stored is not rewritten (the
   * stream is closed unread). On a wrong digest (`ERR_STORE_DIGEST_MISMATCH`), wrong size
   * (`ERR_STORE_SIZE_MISMATCH`), abort (`ERR_STORE_ABORTED`) or I/O error (`ERR_STORE_IO`)
   * the temporary is removed and nothing enters the store. An error raised by the data
   * stream itself (a download failing) is rethrown as it is.
   *
   * @example
   * ```ts
   * await content.write(desc, fs.createReadStream('layer.tar.gz'), AbortSignal.timeout(60_000))
   * ```
   */
  async write(desc: Descriptor, data: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const digest = checkDigest(desc.digest)
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new StoreError('ERR_STORE_INVALID', `descriptor of ${digest}: size must be a non-negative integer, got ${String(desc.size)}`, {
        field: 'size',
        digest,
      })
    }
    if (await this.has(desc)) {
      await closeIterable(data)
      return
    }
    const verifier = new BlobVerifier({ digest, size: desc.size, what: `blob ${digest}` })
    await this.#store(data, verifier, desc.mediaType, signal, `write ${digest}`)
  }

  /**
   * Stores content whose digest is not known in advance (a layer being committed, a member of
   * a `docker save` archive): it is hashed while written and renamed into place at the end.
   * Returns its descriptor. If the same content is already stored, the temporary is dropped.
   *
   * @example
   * ```ts
   * const desc = await content.ingest(gzipStream, { mediaType: MediaType.OciLayerGzip })
   * ```
   */
  async ingest(data: AsyncIterable<Uint8Array>, options: IngestOptions = {}): Promise<Descriptor> {
    const verifier = new BlobVerifier({ algorithm: options.algorithm ?? 'sha256', what: 'ingested content' })
    const mediaType = options.mediaType ?? 'application/octet-stream'
    const { digest, size } = await this.#store(data, verifier, mediaType, options.signal, 'ingest')
    return { mediaType, digest, size }
  }

  /**
   * Stores bytes held in memory and returns their descriptor.
   *
   * @example
   * ```ts
   * const desc = await content.putBytes(MediaType.InToto, Buffer.from(statement))
   * ```
   */
  async putBytes(mediaType: string, bytes: Uint8Array | string): Promise<Descriptor> {
    const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
    const desc: Descriptor = { mediaType, digest: digestOf(buf), size: buf.byteLength }
    await this.write(desc, once(buf))
    return desc
  }

  /**
   * Stores a JSON document, serialised compactly (`JSON.stringify(value)`, no whitespace), and
   * returns its descriptor. The digest is that of exactly these bytes.
   *
   * @example
   * ```ts
   * const manifestDesc = await content.putJson(MediaType.OciManifest, { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers })
   * ```
   */
  async putJson(mediaType: string, value: unknown): Promise<Descriptor> {
    return this.putBytes(mediaType, JSON.stringify(value))
  }

  async #store(
    data: AsyncIterable<Uint8Array>,
    verifier: BlobVerifier,
    mediaType: string | undefined,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<{ digest: Digest; size: number }> {
    throwIfAborted(signal, what)
    const tmp = path.join(this.paths.tmp, tempName(verifier.expectedDigest === undefined ? 'ingest' : splitDigest(verifier.expectedDigest).hex))
    let fh: fs.FileHandle | undefined
    let sourceError: { err: unknown } | undefined
    try {
      try {
        fh = await fs.open(tmp, 'wx', 0o644)
      } catch (err) {
        throw ioError('create temporary', tmp, err)
      }
      const iterator = data[Symbol.asyncIterator]()
      // Network chunks are small (16-64 KiB): gather them and write up to 1 MiB per writev.
      let pending: Uint8Array[] = []
      let pendingBytes = 0
      try {
        for (;;) {
          throwIfAborted(signal, what)
          let next: IteratorResult<Uint8Array>
          try {
            next = await iterator.next()
          } catch (err) {
            sourceError = { err }
            throw err
          }
          if (next.done) break
          const chunk = next.value
          verifier.update(chunk) // throws SizeMismatchError as soon as the blob is too long
          pending.push(chunk)
          pendingBytes += chunk.byteLength
          if (pendingBytes >= WRITE_BATCH) {
            await writeAll(fh, pending, tmp)
            pending = []
            pendingBytes = 0
          }
        }
        await writeAll(fh, pending, tmp)
      } catch (err) {
        if (sourceError === undefined) await closeIterator(iterator)
        throw err
      }
      throwIfAborted(signal, what)
      const digest = verifier.verify()
      try {
        if (this.#durable) await fh.sync()
        await fh.close()
      } catch (err) {
        throw ioError('flush', tmp, err)
      } finally {
        fh = undefined
      }
      const final = this.paths.blob(digest)
      try {
        await fs.rename(tmp, final)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('rename into', final, err)
        // blobs/<alg>/ is missing (sha512, or removed under us): create it and retry.
        await fs.mkdir(path.dirname(final), { recursive: true })
        await fs.rename(tmp, final).catch((e: unknown) => {
          throw ioError('rename into', final, e)
        })
      }
      if (this.#durable) await fsyncDir(path.dirname(final))
      return { digest, size: verifier.bytes }
    } catch (err) {
      await fh?.close().catch(() => undefined)
      await fs.rm(tmp, { force: true }).catch(() => undefined)
      if (sourceError !== undefined && err === sourceError.err) {
        if (signal?.aborted && isAbort(err)) throw new StoreError('ERR_STORE_ABORTED', `${what}: aborted`, { cause: signal.reason })
        throw err
      }
      throw storeErrorOf(err, what, mediaType, signal)
    }
  }

  /**
   * A blob's bytes as a stream (the {@link ContentSource} side, e.g. for a push). Not verified
   * here — {@link ContentStore.readBytes} is; a registry verifies what it receives. A missing
   * blob fails the iteration with `ERR_STORE_NOT_FOUND`.
   *
   * @example
   * ```ts
   * await pipeline(content.read(layerDesc), createGunzip(), tarParser)
   * ```
   */
  read(desc: Descriptor | string): AsyncIterable<Uint8Array> {
    const digest = typeof desc === 'string' ? desc : desc.digest
    const file = this.path(digest)
    return (async function* () {
      const stream = createReadStream(file, { highWaterMark: 1 << 20 })
      try {
        for await (const chunk of stream) yield chunk as Buffer
      } catch (err) {
        throw notFoundOr(err, digest, file)
      } finally {
        stream.destroy()
      }
    })()
  }

  /**
   * A stored blob's bytes, verified against its digest (and the descriptor's size). Meant for
   * manifests, indexes and configs: anything over `maxSize` (default 4 MiB) is refused with
   * `ERR_STORE_BAD_IMAGE`. Missing → `ERR_STORE_NOT_FOUND`; corrupt →
   * `ERR_STORE_DIGEST_MISMATCH` / `ERR_STORE_SIZE_MISMATCH`.
   *
   * @example
   * ```ts
   * const bytes = await content.readBytes(manifestDesc)
   * ```
   */
  async readBytes(desc: Descriptor | string, options: { maxSize?: number } = {}): Promise<Buffer> {
    const digest = checkDigest(typeof desc === 'string' ? desc : desc.digest)
    const expectedSize = typeof desc === 'string' ? undefined : desc.size
    const maxSize = options.maxSize ?? MAX_DOCUMENT_SIZE
    const file = this.paths.blob(digest)
    if (expectedSize !== undefined && expectedSize > maxSize) {
      throw new StoreError('ERR_STORE_BAD_IMAGE', `blob ${digest}: ${expectedSize} bytes is over the ${maxSize}-byte limit for documents`, { digest })
    }
    let fh: fs.FileHandle
    try {
      fh = await fs.open(file, 'r')
    } catch (err) {
      throw notFoundOr(err, digest, file)
    }
    let bytes: Buffer
    try {
      const { size } = await fh.stat()
      if (size > maxSize) {
        throw new StoreError('ERR_STORE_BAD_IMAGE', `blob ${digest}: ${size} bytes is over the ${maxSize}-byte limit for documents`, { digest })
      }
      bytes = await fh.readFile()
    } catch (err) {
      if (err instanceof StoreError) throw err
      throw ioError('read', file, err)
    } finally {
      await fh.close()
    }
    const verifier = new BlobVerifier({ digest, ...(expectedSize !== undefined ? { size: expectedSize } : {}), what: `stored blob ${digest}` })
    try {
      verifier.update(bytes)
      verifier.verify()
    } catch (err) {
      throw storeErrorOf(err, `read ${digest}`, undefined, undefined)
    }
    return bytes
  }

  /**
   * Reads a stored JSON document and validates it with a zod schema (the ones of `@ctr/oci`).
   * Invalid JSON or a document that breaks the schema → `ERR_STORE_BAD_IMAGE` whose message
   * and `field` name the offending field (`config.rootfs.diff_ids[0]`).
   *
   * @example
   * ```ts
   * const config = await content.readJson(manifest.config, ImageConfigSchema)
   * ```
   */
  async readJson<S extends z.core.$ZodType>(desc: Descriptor | string, schema: S, options: { name?: string; maxSize?: number } = {}): Promise<z.output<S>> {
    const bytes = await this.readBytes(desc, options.maxSize !== undefined ? { maxSize: options.maxSize } : {})
    const digest = typeof desc === 'string' ? desc : desc.digest
    const name = options.name ?? documentName(typeof desc === 'string' ? undefined : desc.mediaType)
    try {
      return parseDocument(schema, bytes, { name })
    } catch (err) {
      badImage(err, digest)
    }
  }

  /**
   * Reads a stored manifest or index in any of the four media types (OCI and Docker),
   * verified and validated (`ERR_STORE_BAD_IMAGE` naming the field; Docker schema 1 and
   * unknown types → `ERR_STORE_UNSUPPORTED`).
   *
   * @example
   * ```ts
   * const m = await content.readManifest(record.descriptor)
   * if (m.kind === 'index') selectManifest(m.value, 'linux/arm64')
   * ```
   */
  async readManifest(desc: Descriptor): Promise<ParsedManifest> {
    const bytes = await this.readBytes(desc)
    try {
      return parseManifest(bytes, desc.mediaType)
    } catch (err) {
      badImage(err, desc.digest)
    }
  }

  /**
   * Removes a blob. Returns false when it was not there. Nothing checks that no image uses
   * it: that is garbage collection's job.
   *
   * @example
   * ```ts
   * await content.delete('sha256:…')
   * ```
   */
  async delete(digest: string): Promise<boolean> {
    const file = this.path(digest)
    try {
      await fs.unlink(file)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw ioError('remove', file, err)
    }
  }

  /**
   * The digests of every stored blob (temporaries and stray names skipped), in directory order.
   *
   * @example
   * ```ts
   * for await (const digest of content.list()) console.log(digest)
   * ```
   */
  async *list(): AsyncIterable<Digest> {
    for (const alg of ALGORITHMS) {
      const dir = path.join(this.paths.blobs, alg)
      let names: string[]
      try {
        names = await fs.readdir(dir)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        throw ioError('read directory', dir, err)
      }
      for (const name of names) {
        const digest = `${alg}:${name}`
        if (isDigest(digest)) yield digest
      }
    }
  }

  /**
   * Names a manifest or index (the {@link ContentSink} side: `pull` calls it last, once every
   * blob is stored). Delegated to the {@link RefStore} given at open.
   *
   * @example
   * ```ts
   * await content.tag('docker.io/library/alpine:3.20', indexDesc)
   * ```
   */
  async tag(ref: string, desc: Descriptor): Promise<void> {
    if (this.#refs === undefined) {
      throw new StoreError('ERR_STORE_INVALID', `tag ${ref}: this content store has no image index (open it with { refs } or use ImageStore)`, { field: 'refs' })
    }
    if (!(await this.has(desc))) {
      throw new StoreError('ERR_STORE_NOT_FOUND', `tag ${ref}: blob ${desc.digest} is not in the store`, { digest: desc.digest })
    }
    await this.#refs.set(ref, desc)
  }

  /**
   * The descriptor a name stands for (the {@link ContentSource} side, for a push): looked up
   * in the {@link RefStore}; `undefined` when unknown or when there is none.
   *
   * @example
   * ```ts
   * await content.resolve('busybox:latest') // { mediaType: '…index…', digest: 'sha256:…', size: 1609 }
   * ```
   */
  async resolve(name: string): Promise<Descriptor | undefined> {
    return (await this.#refs?.get(name))?.descriptor
  }
}

function checkDigest(digest: string): Digest {
  if (!isDigest(digest)) {
    let problem = 'invalid digest'
    try {
      splitDigest(digest)
    } catch (err) {
      problem = (err as Error).message
    }
    throw new StoreError('ERR_STORE_INVALID', problem, { field: 'digest' })
  }
  return digest
}

function notFoundOr(err: unknown, digest: string, file: string): StoreError {
  if (err instanceof StoreError) return err
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new StoreError('ERR_STORE_NOT_FOUND', `blob ${digest} is not in the store`, { digest, path: file })
  return ioError('read', file, err)
}

function storeErrorOf(err: unknown, what: string, _mediaType: string | undefined, signal: AbortSignal | undefined): unknown {
  if (err instanceof StoreError) return err
  if (err instanceof DigestMismatchError) {
    return new StoreError('ERR_STORE_DIGEST_MISMATCH', `${what}: ${err.message}`, { digest: err.expected, cause: err })
  }
  if (err instanceof SizeMismatchError) return new StoreError('ERR_STORE_SIZE_MISMATCH', `${what}: ${err.message}`, { cause: err })
  if (isAbort(err) || signal?.aborted) return new StoreError('ERR_STORE_ABORTED', `${what}: aborted`, { cause: signal?.reason ?? err })
  if (isFsError(err)) return ioError(what, err.path ?? '?', err)
  return err
}

/** Bytes gathered before one `writev`. */
const WRITE_BATCH = 1 << 20

async function writeAll(fh: fs.FileHandle, chunks: Uint8Array[], file: string): Promise<void> {
  let rest = chunks
  while (rest.length > 0) {
    let n: number
    try {
      ;({ bytesWritten: n } = await fh.writev(rest))
    } catch (err) {
      throw ioError('write', file, err)
    }
    // A short write (rare): drop what was written and go on with the rest.
    const left: Uint8Array[] = []
    for (const c of rest) {
      if (n >= c.byteLength) n -= c.byteLength
      else {
        left.push(n > 0 ? c.subarray(n) : c)
        n = 0
      }
    }
    rest = left
  }
}

async function closeIterator(it: AsyncIterator<unknown>): Promise<void> {
  try {
    await it.return?.()
  } catch {
    /* the source's own cleanup failed: nothing to add */
  }
}

/** Closes a stream we decided not to read (a blob already stored). */
async function closeIterable(data: AsyncIterable<unknown>): Promise<void> {
  const d = data as AsyncIterable<unknown> & { destroy?: () => void }
  if (typeof d.destroy === 'function') {
    d.destroy()
    return
  }
  await closeIterator(data[Symbol.asyncIterator]())
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}
