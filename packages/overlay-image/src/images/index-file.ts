/**
 * `images.json`: which reference names which manifest or index.
 *
 * ```json
 * { "version": 1, "images": { "docker.io/library/busybox:latest": { "descriptor": {…}, "created": "2024-…Z" } } }
 * ```
 */
import { promises as fs, statSync } from 'node:fs'
import * as z from 'zod'
import { Annotation, DescriptorSchema, OciError, checkDocument, parseReference, type Descriptor } from '@ctr/oci'
import { StoreError, ioError } from '../errors.js'
import { writeFileAtomic } from '../fs/atomic.js'
import { withLockFile } from '../fs/lock.js'
import { StorePaths } from '../paths.js'

/** One named image. */
export interface ImageRecord {
  /** The normalised reference: `docker.io/library/busybox:latest`, `ghcr.io/o/r@sha256:…`. */
  ref: string
  /** The manifest or index it names. */
  descriptor: Descriptor
  /** When the name was (last) set, ISO 8601. */
  created: string
}

const EntrySchema = z.looseObject({
  descriptor: DescriptorSchema,
  created: z.string(),
})

/** The schema of `images.json`. */
export const ImagesFileSchema = z.looseObject({
  version: z.literal(1, { error: (iss) => `must be 1, got ${JSON.stringify(iss.input)}` }),
  images: z.record(z.string(), EntrySchema),
})

/** The content of `images.json`. */
export type ImagesFile = z.output<typeof ImagesFileSchema>

/**
 * Normalises a reference the way Docker does (`busybox` → `docker.io/library/busybox:latest`;
 * a digest reference keeps its digest). Throws `ERR_STORE_INVALID` for an invalid one.
 *
 * @example
 * ```ts
 * normalizeRef('busybox')                 // 'docker.io/library/busybox:latest'
 * normalizeRef('ghcr.io/o/r@sha256:…')    // 'ghcr.io/o/r@sha256:…'
 * ```
 */
export function normalizeRef(ref: string): string {
  try {
    return parseReference(ref).toString()
  } catch (err) {
    if (err instanceof OciError) throw new StoreError('ERR_STORE_INVALID', err.message, { field: 'ref', cause: err })
    throw err
  }
}

/** A digest or a prefix of one: `sha256:<hex>`, `<hex>` (12 to 64 hex digits). */
const DIGEST_QUERY_RE = /^(?:(sha256|sha512):)?([0-9a-f]{12,128})$/

/**
 * Whether a string could name an image by digest or id: `sha256:` followed by hex, or 12 to 64
 * bare hex digits. Returns the algorithm and hex prefix.
 *
 * @example
 * ```ts
 * digestQuery('3f9a0c1d2b7e')        // { algorithm: 'sha256', hex: '3f9a0c1d2b7e' }
 * digestQuery('sha256:3f9a0c1d2b7e') // { algorithm: 'sha256', hex: '3f9a0c1d2b7e' }
 * digestQuery('busybox')             // undefined
 * ```
 */
export function digestQuery(query: string): { algorithm: string; hex: string } | undefined {
  const m = DIGEST_QUERY_RE.exec(query)
  if (m === null) return undefined
  const algorithm = m[1] ?? 'sha256'
  const hex = m[2] ?? ''
  if (algorithm === 'sha256' && hex.length > 64) return undefined
  return { algorithm, hex }
}

/** What {@link ImageIndex.lookup} matched. */
export interface LookupResult {
  /** How it matched. */
  by: 'ref' | 'digest' | 'id'
  /** The full digest that matched (`by` digest or id), or the normalised reference. */
  matched: string
  /** Every record naming the matched image (several tags may name one image). */
  records: ImageRecord[]
  /** The record to use: the one the reference named, else the first of `records`. */
  record: ImageRecord
}

function result(by: LookupResult['by'], matched: string, records: ImageRecord[], record?: ImageRecord): LookupResult {
  return { by, matched, records, record: record ?? (records[0] as ImageRecord) }
}

/**
 * The digests an image record stands for besides its own descriptor's: the platform manifests
 * of an index and the config digests (image ids). Supplied by the caller, which can read
 * content; see {@link imageDigests}.
 */
export type RelatedDigests = (record: ImageRecord) => Promise<{ manifests: readonly string[]; ids: readonly string[] }>

/**
 * The reference index of a store (`<root>/images.json`): normalised reference → descriptor of
 * a manifest or index, with lookups by reference, digest, image id or a unique prefix (at
 * least 12 hex digits) of either, as `docker inspect` and `docker rmi` accept.
 *
 * Updates are read-modify-write under a lock file (`images.json.lock`), so processes sharing
 * the store never lose each other's tags, and the file is replaced atomically (temporary,
 * fsync, rename). Reads reload the file when another process changed it.
 *
 * @example
 * ```ts
 * const index = await ImageIndex.load(new StorePaths('/var/lib/ctr'))
 * await index.set('busybox', manifestDesc)        // stored as docker.io/library/busybox:latest
 * (await index.get('busybox:latest'))?.descriptor  // manifestDesc
 * await index.lookup('3f9a0c1d2b7e', imageDigests(content))
 * ```
 */
export class ImageIndex {
  #doc: ImagesFile = { version: 1, images: {} }
  #stamp = ''

  private constructor(
    readonly file: string,
    private readonly durable: boolean,
  ) {}

  /**
   * Loads `images.json` (a missing file is an empty index). An invalid file throws
   * `ERR_STORE_BAD_IMAGE` naming the field.
   *
   * @example
   * ```ts
   * const index = await ImageIndex.load(paths)                 // <root>/images.json
   * const other = await ImageIndex.load('/tmp/ctr-x/images.json', { fsync: false })
   * ```
   */
  static async load(where: StorePaths | string, options: { fsync?: boolean } = {}): Promise<ImageIndex> {
    const file = where instanceof StorePaths ? where.images : where
    const index = new ImageIndex(file, options.fsync ?? true)
    await index.#refresh(true)
    return index
  }

  /** Re-reads the file if it changed since it was last read (or always, with `force`). */
  async #refresh(force = false): Promise<void> {
    let stamp: string
    try {
      // Every image lookup starts here (a container create makes two): one stat of a file
      // whose inode the kernel has cached, cheaper on this thread than a thread-pool trip.
      const st = statSync(this.file, { bigint: true })
      stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('stat', this.file, err)
      this.#doc = { version: 1, images: {} }
      this.#stamp = ''
      return
    }
    if (!force && stamp === this.#stamp) return
    this.#doc = await this.#read()
    this.#stamp = stamp
  }

  async #read(): Promise<ImagesFile> {
    let text: string
    try {
      text = await fs.readFile(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, images: {} }
      throw ioError('read', this.file, err)
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (err) {
      throw new StoreError('ERR_STORE_BAD_IMAGE', `${this.file}: not valid JSON (${(err as Error).message})`, { path: this.file, cause: err })
    }
    try {
      return checkDocument(ImagesFileSchema, json, { name: 'images.json' })
    } catch (err) {
      const e = err as OciError
      throw new StoreError('ERR_STORE_BAD_IMAGE', `${this.file}: ${e.message}`, { path: this.file, ...(e.path ? { field: e.path } : {}), cause: err })
    }
  }

  /** Read-modify-write under the lock; `fn` changes the fresh document and says whether to save. */
  async #update<T>(fn: (doc: ImagesFile) => { save: boolean; result: T }): Promise<T> {
    return withLockFile(`${this.file}.lock`, async () => {
      const doc = await this.#read()
      const { save, result } = fn(doc)
      if (save) await writeFileAtomic(this.file, `${JSON.stringify(doc, null, 2)}\n`, { fsync: this.durable })
      this.#doc = doc
      await this.#refresh(true)
      return result
    })
  }

  /**
   * The record of a reference (normalised first), or undefined.
   *
   * @example
   * ```ts
   * await index.get('busybox')   // { ref: 'docker.io/library/busybox:latest', descriptor, created }
   * ```
   */
  async get(ref: string): Promise<ImageRecord | undefined> {
    const key = normalizeRef(ref)
    await this.#refresh()
    const entry = this.#doc.images[key]
    return entry === undefined ? undefined : { ref: key, descriptor: entry.descriptor, created: entry.created }
  }

  /**
   * Names a manifest or index (replacing what the name pointed to). Returns the record.
   *
   * @example
   * ```ts
   * await index.set('mine/app:v2', manifestDesc)
   * ```
   */
  async set(ref: string, desc: Descriptor): Promise<ImageRecord> {
    const key = normalizeRef(ref)
    let descriptor: Descriptor
    try {
      descriptor = checkDocument(DescriptorSchema, desc, { name: 'descriptor' })
    } catch (err) {
      throw new StoreError('ERR_STORE_INVALID', `tag ${key}: ${(err as Error).message}`, { field: 'descriptor', cause: err })
    }
    // The ref name of an image layout's index.json meant something only there; `data` is a copy of the content.
    const { data: _d, ...kept } = descriptor
    if (kept.annotations !== undefined) {
      const { [Annotation.RefName]: _r, ...rest } = kept.annotations
      if (Object.keys(rest).length === 0) delete kept.annotations
      else kept.annotations = rest
    }
    const created = new Date().toISOString()
    return this.#update((doc) => {
      doc.images[key] = { descriptor: kept, created }
      return { save: true, result: { ref: key, descriptor: kept, created } }
    })
  }

  /**
   * Removes a name. Returns false when it was not there. The content stays until garbage
   * collection.
   *
   * @example
   * ```ts
   * await index.delete('busybox:latest') // true
   * ```
   */
  async delete(ref: string): Promise<boolean> {
    const key = normalizeRef(ref)
    return this.#update((doc) => {
      if (!(key in doc.images)) return { save: false, result: false }
      delete doc.images[key]
      return { save: true, result: true }
    })
  }

  /**
   * Every record, sorted by reference.
   *
   * @example
   * ```ts
   * for (const r of await index.list()) console.log(r.ref, r.descriptor.digest)
   * ```
   */
  async list(): Promise<ImageRecord[]> {
    await this.#refresh()
    return Object.entries(this.#doc.images)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([ref, e]) => ({ ref, descriptor: e.descriptor, created: e.created }))
  }

  /**
   * Finds an image the way `docker inspect` / `docker rmi` do:
   *
   * 1. a reference that is in the index (`busybox`, `busybox:latest`, a digest reference);
   * 2. a digest reference `name@sha256:…` whose name has a record with that digest (or, with
   *    `related`, an index record listing it);
   * 3. a digest or unique prefix (12+ hex digits, with or without `sha256:`) of a record's
   *    manifest/index digest, or — with `related` — of a platform manifest's digest or an image
   *    id (config digest).
   *
   * Every record naming the matched image is returned. Not found → `ERR_STORE_NOT_FOUND`; a
   * prefix matching several images → `ERR_STORE_INVALID` listing them.
   *
   * @example
   * ```ts
   * const { records, by } = await index.lookup('sha256:3f9a0c1d2b7e', imageDigests(content))
   * ```
   */
  async lookup(query: string, related?: RelatedDigests): Promise<LookupResult> {
    await this.#refresh()
    const all = await this.list()
    const byDigest = (digest: string) => all.filter((r) => r.descriptor.digest === digest)

    let ref: ReturnType<typeof parseReference> | undefined
    try {
      ref = parseReference(query)
    } catch {
      ref = undefined
    }
    if (ref !== undefined) {
      const key = ref.toString()
      const exact = all.find((r) => r.ref === key)
      if (exact !== undefined) return result('ref', key, byDigest(exact.descriptor.digest), exact)
      if (ref.digest !== undefined) {
        const sameName = all.filter((r) => parseReference(r.ref).name === ref.name)
        const hit = sameName.find((r) => r.descriptor.digest === ref.digest)
        if (hit !== undefined) return result('digest', ref.digest, byDigest(hit.descriptor.digest))
        if (related !== undefined) {
          for (const r of sameName) {
            if ((await related(r)).manifests.includes(ref.digest)) return result('digest', ref.digest, byDigest(r.descriptor.digest))
          }
        }
      }
    }

    const q = digestQuery(query)
    if (q !== undefined) {
      const prefix = `${q.algorithm}:${q.hex}`
      // image key (the record's descriptor digest) → the full digest that matched, and how
      const hits = new Map<string, { matched: string; by: 'digest' | 'id' }>()
      for (const r of all) {
        const key = r.descriptor.digest
        if (key.startsWith(prefix)) hits.set(key, { matched: key, by: 'digest' })
      }
      if (related !== undefined) {
        for (const r of all) {
          const key = r.descriptor.digest
          if (hits.has(key)) continue
          const rel = await related(r)
          const m = rel.manifests.find((d) => d.startsWith(prefix))
          const i = rel.ids.find((d) => d.startsWith(prefix))
          if (m !== undefined) hits.set(key, { matched: m, by: 'digest' })
          else if (i !== undefined) hits.set(key, { matched: i, by: 'id' })
        }
      }
      if (hits.size > 1) {
        // One image under two top-level digests is still ambiguous only if the matched digests differ.
        const matched = new Set([...hits.values()].map((h) => h.matched))
        if (matched.size > 1) {
          throw new StoreError('ERR_STORE_INVALID', `${query} is ambiguous: it matches ${[...matched].sort().join(', ')}`, { field: 'ref' })
        }
      }
      const first = [...hits.entries()][0]
      if (first !== undefined) {
        return result(first[1].by, first[1].matched, all.filter((r) => hits.has(r.descriptor.digest)))
      }
    }
    if (ref === undefined && q === undefined) {
      throw new StoreError('ERR_STORE_INVALID', `${JSON.stringify(query)} is neither a valid reference nor an image id or digest`, { field: 'ref' })
    }
    throw new StoreError('ERR_STORE_NOT_FOUND', `image ${ref?.toString() ?? query} is not in the store`)
  }
}
