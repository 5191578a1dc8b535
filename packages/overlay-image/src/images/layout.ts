/**
 * Import from and export to OCI image layout directories (`oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`), as skopeo's `oci:DIR:REF`, umoci and BuildKit write them.
 */
import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import {
  Annotation,
  OciError,
  isNondistributable,
  parseLayoutIndex,
  parseManifest,
  parseOciLayout,
  parseReference,
  splitDigest,
  verifyBlob,
  MAX_MANIFEST_SIZE,
  type Descriptor,
  type ImageIndex as OciImageIndex,
  type Platform,
} from '@ctr/oci'
import { OciLayout } from '@ctr/registry-client'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import type { ContentStore } from '../content/store.js'
import { normalizeRef, type ImageIndex } from './index-file.js'
import { resolveImage } from './resolve.js'
import { imageDigests, walkImage } from './walk.js'

/** Options of {@link importLayout}. */
export interface ImportLayoutOptions {
  /**
   * The reference to name the image by in the store. Default: the layout's ref name, when it
   * is a full reference (`docker.io/library/busybox:latest`, `library/busybox:latest`); a bare
   * tag such as `latest` needs `ref`.
   */
  ref?: string
  /**
   * Which `org.opencontainers.image.ref.name` of the layout to import. Default: the only
   * entry of `index.json`, or the only name; otherwise `ERR_STORE_INVALID` lists the choices.
   */
  name?: string
  signal?: AbortSignal
}

/** What {@link importLayout} imported. */
export interface ImportedLayoutImage {
  /** The normalised reference it is named by in the store. */
  ref: string
  /** The manifest or index the reference names. */
  descriptor: Descriptor
  /** How many blobs were copied (those already stored are not counted). */
  copied: number
  /** Index entries the layout does not hold (other platforms), left out. */
  skipped: Descriptor[]
}

function badLayout(dir: string, err: unknown): never {
  if (err instanceof OciError) {
    throw new StoreError('ERR_STORE_BAD_IMAGE', `OCI layout ${dir}: ${err.message}`, { path: dir, ...(err.path !== undefined ? { field: err.path } : {}), cause: err })
  }
  throw err
}

async function readSmall(file: string, what: string): Promise<Buffer | undefined> {
  try {
    const st = await fs.stat(file)
    if (st.size > MAX_MANIFEST_SIZE) throw new StoreError('ERR_STORE_BAD_IMAGE', `${what}: ${st.size} bytes is over the ${MAX_MANIFEST_SIZE}-byte limit`, { path: file })
    return await fs.readFile(file)
  } catch (err) {
    if (err instanceof StoreError) throw err
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw ioError('read', file, err)
  }
}

/** Reads and validates `oci-layout` and `index.json` of a layout directory. */
async function readLayout(dir: string): Promise<OciImageIndex> {
  const header = await readSmall(path.join(dir, 'oci-layout'), `OCI layout ${dir}`)
  if (header === undefined) throw new StoreError('ERR_STORE_BAD_IMAGE', `${dir} is not an OCI image layout: it has no oci-layout file`, { path: dir })
  try {
    parseOciLayout(header)
  } catch (err) {
    badLayout(dir, err)
  }
  const indexBytes = await readSmall(path.join(dir, 'index.json'), `OCI layout ${dir}`)
  if (indexBytes === undefined) throw new StoreError('ERR_STORE_BAD_IMAGE', `OCI layout ${dir}: index.json is missing`, { path: dir })
  try {
    return parseLayoutIndex(indexBytes)
  } catch (err) {
    badLayout(dir, err)
  }
}

/** The path of a blob in a layout (digests are validated, so this stays under `blobs/`). */
function layoutBlob(dir: string, digest: string): string {
  const { algorithm, hex } = splitDigest(digest)
  return path.join(dir, 'blobs', algorithm, hex)
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file)
    return true
  } catch {
    return false
  }
}

/** Picks the entry of a layout's index.json to import. */
function chooseEntry(dir: string, index: OciImageIndex, name: string | undefined): Descriptor {
  const entries = index.manifests
  const names = [...new Set(entries.map((m) => m.annotations?.[Annotation.RefName]).filter((n): n is string => n !== undefined))]
  if (name !== undefined) {
    const hits = entries.filter((m) => m.annotations?.[Annotation.RefName] === name)
    if (hits.length === 0) {
      throw new StoreError('ERR_STORE_NOT_FOUND', `OCI layout ${dir} has no image named ${JSON.stringify(name)} (names: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'})`, {
        path: dir,
      })
    }
    if (new Set(hits.map((h) => h.digest)).size > 1) {
      throw new StoreError('ERR_STORE_BAD_IMAGE', `OCI layout ${dir}: the name ${JSON.stringify(name)} is given to ${hits.length} different manifests`, { path: dir })
    }
    return hits[0] as Descriptor
  }
  if (entries.length === 1) return entries[0] as Descriptor
  if (entries.length === 0) throw new StoreError('ERR_STORE_NOT_FOUND', `OCI layout ${dir} holds no image (index.json lists no manifests)`, { path: dir })
  if (names.length === 1 && entries.every((m) => m.annotations?.[Annotation.RefName] === names[0] || m.annotations?.[Annotation.RefName] === undefined)) {
    const named = entries.filter((m) => m.annotations?.[Annotation.RefName] === names[0])
    if (named.length === 1) return named[0] as Descriptor
  }
  throw new StoreError(
    'ERR_STORE_INVALID',
    `OCI layout ${dir} holds ${entries.length} images: choose one with { name } (names: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'})`,
    { path: dir, field: 'name' },
  )
}

/** The store reference for a layout ref name, when the name is a full reference. */
function refFromName(dir: string, name: string | undefined): string {
  if (name !== undefined && (name.includes('/') || name.includes(':') || name.includes('@'))) {
    try {
      return parseReference(name).toString()
    } catch {
      /* not a reference: fall through */
    }
  }
  throw new StoreError(
    'ERR_STORE_INVALID',
    name === undefined
      ? `OCI layout ${dir}: the image has no ref name; say what to call it with { ref }`
      : `OCI layout ${dir}: the ref name ${JSON.stringify(name)} is not a full reference; say what to call the image with { ref }`,
    { field: 'ref', path: dir },
  )
}

/**
 * Imports one image of an OCI image layout directory: validates `oci-layout` and
 * `index.json`, copies every blob reachable from the chosen manifest or index into the store
 * (each verified; children before parents), then names it. Index entries the layout lacks
 * (a layout written for one platform) are skipped and reported; a manifest's config and
 * layers must all be there (non-distributable layers excepted). Nothing in `dir` is modified.
 *
 * Errors: not a layout or invalid documents → `ERR_STORE_BAD_IMAGE` (naming the field); no
 * such name → `ERR_STORE_NOT_FOUND` listing the names; several images and no `name` →
 * `ERR_STORE_INVALID`; a missing blob → `ERR_STORE_NOT_FOUND` naming the digest; a corrupt one
 * → `ERR_STORE_DIGEST_MISMATCH` / `ERR_STORE_SIZE_MISMATCH`.
 *
 * @example
 * ```ts
 * // skopeo copy docker://busybox oci:/tmp/bb:latest
 * await importLayout(content, index, '/tmp/bb', { ref: 'busybox:latest' })
 * await importLayout(content, index, fixtures.dir, { name: 'library/busybox:multi' }) // → docker.io/library/busybox:multi
 * ```
 */
export async function importLayout(content: ContentStore, index: ImageIndex, dir: string, options: ImportLayoutOptions = {}): Promise<ImportedLayoutImage> {
  const root = path.resolve(dir)
  const layoutIndex = await readLayout(root)
  const entry = chooseEntry(root, layoutIndex, options.name)
  const refName = entry.annotations?.[Annotation.RefName]
  const ref = options.ref !== undefined ? normalizeRef(options.ref) : refFromName(root, refName)
  const signal = options.signal
  let copied = 0
  const skipped: Descriptor[] = []

  const copyBlob = async (desc: Descriptor, optional: boolean): Promise<void> => {
    throwIfAborted(signal, `import ${ref}`)
    if (await content.has(desc)) return
    const file = layoutBlob(root, desc.digest)
    if (!(await exists(file))) {
      if (optional) return
      throw new StoreError('ERR_STORE_NOT_FOUND', `OCI layout ${root}: blob ${desc.digest} is missing`, { digest: desc.digest, path: file })
    }
    await content.write(desc, createReadStream(file, { highWaterMark: 1 << 20 }), signal)
    copied++
  }

  const copyTree = async (desc: Descriptor, depth: number): Promise<boolean> => {
    throwIfAborted(signal, `import ${ref}`)
    const file = layoutBlob(root, desc.digest)
    const bytes = await readSmall(file, `OCI layout ${root}: manifest ${desc.digest}`)
    if (bytes === undefined) {
      if (depth > 0) {
        skipped.push(desc)
        return false
      }
      throw new StoreError('ERR_STORE_NOT_FOUND', `OCI layout ${root}: manifest ${desc.digest} is missing`, { digest: desc.digest, path: file })
    }
    try {
      verifyBlob(bytes, { digest: desc.digest, size: desc.size, what: `OCI layout ${root}: manifest ${desc.digest}` })
    } catch (err) {
      const code = (err as OciError).code === 'ERR_OCI_SIZE_MISMATCH' ? 'ERR_STORE_SIZE_MISMATCH' : 'ERR_STORE_DIGEST_MISMATCH'
      throw new StoreError(code, (err as Error).message, { digest: desc.digest, path: file, cause: err })
    }
    let parsed
    try {
      parsed = parseManifest(bytes, desc.mediaType)
    } catch (err) {
      if (err instanceof OciError) {
        throw new StoreError(err.code === 'ERR_OCI_UNSUPPORTED_MEDIA_TYPE' ? 'ERR_STORE_UNSUPPORTED' : 'ERR_STORE_BAD_IMAGE', `OCI layout ${root}: blob ${desc.digest}: ${err.message}`, {
          digest: desc.digest,
          ...(err.path !== undefined ? { field: err.path } : {}),
          cause: err,
        })
      }
      throw err
    }
    if (parsed.kind === 'index') {
      if (depth >= 8) throw new StoreError('ERR_STORE_BAD_IMAGE', `OCI layout ${root}: indexes nest more than 8 deep`, { digest: desc.digest })
      let present = 0
      for (const child of parsed.value.manifests) if (await copyTree(child, depth + 1)) present++
      if (present === 0) {
        throw new StoreError('ERR_STORE_NOT_FOUND', `OCI layout ${root}: none of the ${parsed.value.manifests.length} manifests of index ${desc.digest} is in the layout`, {
          digest: desc.digest,
        })
      }
    } else {
      await copyBlob(parsed.value.config, false)
      for (const layer of parsed.value.layers) await copyBlob(layer, isNondistributable(layer.mediaType))
    }
    if (!(await content.has(desc))) {
      await content.write(desc, once(bytes), signal)
      copied++
    }
    return true
  }

  await copyTree(entry, 0)
  const { annotations: _a, ...descriptor } = entry
  const record = await index.set(ref, descriptor)
  return { ref, descriptor: record.descriptor, copied, skipped }
}

/** Options of {@link exportLayout}. */
export interface ExportLayoutOptions {
  /**
   * The `org.opencontainers.image.ref.name` to give it in the layout (what skopeo's
   * `oci:DIR:REF` names). Default: the normalised reference (`docker.io/library/busybox:latest`).
   */
  name?: string
  /**
   * What to export when the reference names an index: `'all'` — the index as it is (every
   * entry must be stored); a platform — only that platform's manifest. Default: the whole
   * index when every entry is stored, else this host's platform manifest.
   */
  platform?: 'all' | string | Platform
  signal?: AbortSignal
}

/** What {@link exportLayout} wrote. */
export interface ExportedLayoutImage {
  /** The layout directory. */
  dir: string
  /** The ref name given in `index.json`. */
  name: string
  /** The descriptor `index.json` names (the index, or one platform's manifest). */
  descriptor: Descriptor
  /** How many blobs were written (those already in the layout are not counted). */
  written: number
}

/**
 * Exports an image into an OCI image layout directory (created if missing; merged into when
 * it already is a layout: blobs it has are kept, an entry with the same ref name is
 * replaced). Blobs go in first (each verified as it is written, through registry-client's
 * {@link OciLayout}), `index.json` last, replaced atomically. A directory that exists, is not
 * empty and is not a layout is refused (`ERR_STORE_INVALID`).
 *
 * @example
 * ```ts
 * await exportLayout(content, index, 'busybox:latest', '/tmp/ctr-bb')
 * // skopeo inspect oci:/tmp/ctr-bb:docker.io/library/busybox:latest
 * await exportLayout(content, index, 'busybox:multi', '/tmp/ctr-bb', { name: 'multi', platform: 'linux/arm64' })
 * ```
 */
export async function exportLayout(
  content: ContentStore,
  index: ImageIndex,
  ref: string,
  dir: string,
  options: ExportLayoutOptions = {},
): Promise<ExportedLayoutImage> {
  const root = path.resolve(dir)
  const signal = options.signal
  const found = await index.lookup(ref, imageDigests(content))
  const record = found.record
  const name = options.name ?? record.ref

  let top: Descriptor = record.descriptor
  let tree = await walkImage(content, top, signal ? { signal } : {})
  const whole = options.platform === 'all' || (options.platform === undefined && tree.missing.length === 0)
  if (options.platform === 'all' && tree.missing.length > 0) {
    throw new StoreError('ERR_STORE_NOT_FOUND', `image ${record.ref}: ${tree.missing.length} manifests of its index are not in the store (${tree.missing.map((m) => m.digest).join(', ')})`, {
      ...(tree.missing[0] ? { digest: tree.missing[0].digest } : {}),
    })
  }
  if (!whole || (found.by !== 'ref' && found.matched !== record.descriptor.digest)) {
    const platform = options.platform === undefined || options.platform === 'all' ? undefined : options.platform
    const resolved = await resolveImage(content, index, found.by === 'ref' ? record.ref : found.matched, platform)
    top = resolved.manifestDesc
    tree = await walkImage(content, top, signal ? { signal } : {})
  }

  // Never scribble into a directory that is something else.
  let entries: string[] = []
  try {
    entries = await fs.readdir(root)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('read directory', root, err)
  }
  if (entries.length > 0) {
    if (!entries.includes('oci-layout')) {
      throw new StoreError('ERR_STORE_INVALID', `${root} exists and is not an OCI image layout (no oci-layout file); export into an empty or new directory`, { path: root })
    }
    await readLayout(root)
  }

  const layout = await OciLayout.open(root, { fsync: content.fsync })
  let written = 0
  const put = async (desc: Descriptor, optional = false): Promise<void> => {
    throwIfAborted(signal, `export ${record.ref}`)
    if (await layout.has(desc)) return
    if (!(await content.has(desc))) {
      if (optional) return
      throw new StoreError('ERR_STORE_NOT_FOUND', `image ${record.ref}: blob ${desc.digest} is not in the store`, { digest: desc.digest })
    }
    try {
      await layout.write(desc, content.read(desc), signal)
    } catch (err) {
      if (err instanceof StoreError) throw err
      if (err instanceof OciError) {
        throw new StoreError(err.code === 'ERR_OCI_SIZE_MISMATCH' ? 'ERR_STORE_SIZE_MISMATCH' : 'ERR_STORE_DIGEST_MISMATCH', `export ${record.ref}: ${err.message}`, {
          digest: desc.digest,
          cause: err,
        })
      }
      if ((err as Error).name === 'AbortError') throw new StoreError('ERR_STORE_ABORTED', `export ${record.ref}: aborted`, { cause: err })
      throw ioError(`export ${record.ref}: write blob ${desc.digest} into`, root, err)
    }
    written++
  }
  for (const { desc, manifest } of tree.manifests) {
    await put(manifest.config)
    for (const layer of manifest.layers) await put(layer, isNondistributable(layer.mediaType))
    await put(desc)
  }
  for (const { desc } of [...tree.indexes].reverse()) await put(desc)
  const { annotations: _a, ...entry } = top
  await layout.tag(name, entry)
  return { dir: root, name, descriptor: entry, written }
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}
