/**
 * `docker save` tarballs in and out: the format `docker load` and skopeo's `docker-archive:`
 * transport read and write.
 *
 * ```
 * manifest.json                 [{ "Config": "<hex>.json", "RepoTags": ["busybox:latest"], "Layers": ["<hex>/layer.tar"] }]
 * <hex>.json                    the image config (its sha256 is the image id)
 * <hex>/layer.tar               an uncompressed layer (legacy layout; skopeo writes <hex>.tar)
 * blobs/sha256/<hex>            Docker ≥ 25 writes layers and config OCI-style, named by digest
 * repositories                  { "busybox": { "latest": "<top layer id>" } } (legacy)
 * ```
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import { once } from 'node:events'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import * as z from 'zod'
import { Header, Parser, Pax, type ReadEntry } from 'tar'
import {
  BlobVerifier,
  MediaType,
  OciError,
  checkDocument,
  digestOf,
  parseImageConfig,
  parseReference,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Platform,
} from '@ctr/oci'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import type { ContentStore } from '../content/store.js'
import { fsyncDir, tempName, tempPathFor } from '../fs/atomic.js'
import { compressionOf, decompress, sniffCompression, type Compression } from '../layers/compression.js'
import { normalizeRef, type ImageIndex } from './index-file.js'
import { resolveImage, type ResolvedImage } from './resolve.js'

/** `manifest.json` of a docker archive. */
export const ArchiveManifestSchema = z.array(
  z.looseObject({
    Config: z.string().min(1),
    RepoTags: z.array(z.string()).nullish(),
    Layers: z.array(z.string().min(1)),
  }),
)

/** Members up to this size are kept in memory while the archive streams by; bigger ones go straight into the store. */
const SMALL_MEMBER = 1 << 20
/** Past this many bytes of small members held in memory, the rest go into the store too (an archive of a million tiny files stays bounded). */
const MAX_BUFFERED = 64 << 20
/** The largest `manifest.json` or config accepted. */
const MAX_JSON = 4 << 20
const LAYER_MEDIA_TYPE: Record<Compression, string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
}

/** Options of {@link importDockerArchive}. */
export interface ImportDockerArchiveOptions {
  /**
   * The reference to name the image by, instead of its `RepoTags` (needed for an image
   * without tags). Only for an archive of one image, or with `name`.
   */
  ref?: string
  /** Import only the image with this `RepoTags` entry (compared normalised: `busybox` = `docker.io/library/busybox:latest`). */
  name?: string
  signal?: AbortSignal
}

/** One image {@link importDockerArchive} imported. */
export interface ImportedArchiveImage {
  /** The normalised references it was tagged with. */
  refs: string[]
  /** The Docker schema 2 manifest made for it (layers as stored in the archive). */
  manifest: Descriptor
  /** Its config; `config.digest` is the image id, as in Docker. */
  config: Descriptor
  /** The layer descriptors, base first. */
  layers: Descriptor[]
}

/** A member of the archive, as the single pass left it. */
type Member =
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'blob'; desc: Descriptor; compression: Compression }
  | { kind: 'link'; target: string }

/** A member name as a key: no leading `./` or `/`, normalised. */
function memberKey(name: string): string {
  let n = path.posix.normalize(name.replace(/\\/g, '/'))
  while (n.startsWith('./')) n = n.slice(2)
  while (n.startsWith('/')) n = n.slice(1)
  if (n.endsWith('/')) n = n.slice(0, -1)
  return n
}

function archiveError(code: 'ERR_STORE_BAD_IMAGE' | 'ERR_STORE_DIGEST_MISMATCH' | 'ERR_STORE_DIFF_ID_MISMATCH', file: string, message: string, extra: { field?: string; digest?: string; cause?: unknown } = {}): StoreError {
  return new StoreError(code, `docker archive ${file}: ${message}`, { path: file, ...extra })
}

/** Passes a stream through, keeping its first bytes. */
async function* withHead(data: AsyncIterable<Uint8Array>, head: { bytes: Buffer }): AsyncGenerator<Uint8Array> {
  for await (const chunk of data) {
    if (head.bytes.length < 8) head.bytes = Buffer.concat([head.bytes, Buffer.from(chunk.subarray(0, 8))]).subarray(0, 8)
    yield chunk
  }
}

/** Reads a whole archive once: small members into memory, large ones into the content store. */
async function readArchive(content: ContentStore, file: string, signal: AbortSignal | undefined): Promise<Map<string, Member>> {
  const members = new Map<string, Member>()
  let failure: { err: unknown } | undefined
  let wake: () => void = () => undefined
  const failed = new Promise<void>((resolve) => (wake = resolve))
  const fail = (err: unknown): void => {
    failure ??= { err }
    wake()
  }
  const tasks: Promise<void>[] = []
  let buffered = 0
  const parser = new Parser({ strict: true, maxMetaEntrySize: 1 << 20 })
  parser.on('error', (err: Error) => fail(archiveError('ERR_STORE_BAD_IMAGE', file, `not a valid tar archive: ${err.message}`, { cause: err })))
  parser.on('entry', (entry: ReadEntry) => {
    const name = memberKey(entry.path)
    const task = (async () => {
      switch (entry.type) {
        case 'File':
        case 'OldFile':
        case 'ContiguousFile': {
          if (entry.size <= SMALL_MEMBER && buffered + entry.size <= MAX_BUFFERED) {
            buffered += entry.size
            const parts: Buffer[] = []
            for await (const c of entry as AsyncIterable<Buffer>) parts.push(c)
            members.set(name, { kind: 'bytes', bytes: Buffer.concat(parts) })
          } else {
            const head = { bytes: Buffer.alloc(0) }
            const desc = await content.ingest(withHead(entry as AsyncIterable<Uint8Array>, head), signal ? { signal } : {})
            members.set(name, { kind: 'blob', desc, compression: sniffCompression(head.bytes) })
          }
          return
        }
        case 'SymbolicLink':
          // Legacy `docker save` links a layer shared by two images: `<id2>/layer.tar -> ../<id1>/layer.tar`.
          members.set(name, { kind: 'link', target: memberKey(path.posix.join(path.posix.dirname(name), entry.linkpath ?? '')) })
          entry.resume()
          return
        case 'Link':
          members.set(name, { kind: 'link', target: memberKey(entry.linkpath ?? '') })
          entry.resume()
          return
        default:
          entry.resume()
      }
    })()
    tasks.push(
      task.catch((err: unknown) => {
        entry.resume() // let the parser go on to its end, so nothing waits on this entry
        fail(err)
      }),
    )
  })

  const ended = new Promise<void>((resolve) => {
    parser.on('end', () => resolve())
    parser.on('close', () => resolve())
  })
  const input = createReadStream(file, { highWaterMark: 1 << 20 })
  try {
    for await (const chunk of input) {
      if (failure) break
      throwIfAborted(signal, `import ${file}`)
      if (!parser.write(chunk as Buffer)) await Promise.race([once(parser, 'drain'), failed])
    }
    if (!failure) {
      parser.end()
      await Promise.race([ended, failed])
    }
  } catch (err) {
    if (err instanceof StoreError) fail(err)
    else if ((err as NodeJS.ErrnoException).code !== undefined) fail(ioError('read', file, err))
    else fail(err)
  } finally {
    input.destroy()
  }
  await Promise.all(tasks)
  if (failure) throw failure.err
  return members
}

/** Follows links (at most 16) to the member holding the bytes; undefined when missing. */
function lookupMember(members: Map<string, Member>, name: string): { key: string; member: Exclude<Member, { kind: 'link' }> } | undefined {
  let key = memberKey(name)
  for (let i = 0; i < 16; i++) {
    const m = members.get(key)
    if (m === undefined) return undefined
    if (m.kind !== 'link') return { key, member: m }
    key = m.target
  }
  return undefined
}

/** What a content-addressed member name says its digest is (`blobs/sha256/<hex>`, `<hex>.json`). */
function digestFromName(key: string, kind: 'config' | 'layer'): string | undefined {
  const blob = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(key)
  if (blob) return `${blob[1]}:${blob[2]}`
  if (kind === 'config') {
    const legacy = /^([0-9a-f]{64})\.json$/.exec(key)
    if (legacy) return `sha256:${legacy[1]}`
  }
  return undefined
}

async function memberBytes(content: ContentStore, m: Exclude<Member, { kind: 'link' }>, maxSize: number): Promise<Buffer> {
  return m.kind === 'bytes' ? m.bytes : content.readBytes(m.desc, { maxSize })
}

/** The diff id of a stored layer blob: its digest when uncompressed, else the digest of its decompressed bytes. */
async function diffIdOf(content: ContentStore, desc: Descriptor, compression: Compression): Promise<Digest> {
  if (compression === 'none') return desc.digest
  const v = new BlobVerifier()
  for await (const chunk of decompress(Readable.from(content.read(desc), { objectMode: false }), compression)) v.update(chunk as Buffer)
  return v.digest()
}

/**
 * Imports a `docker save` tarball (also `skopeo copy … docker-archive:`, and Docker ≥ 25's
 * OCI-style archives): every image of its `manifest.json` (or the one named `name`), tagged by
 * its `RepoTags` (or as `ref`).
 *
 * The archive is read once, with node-tar: small members are kept in memory, large ones
 * (layers) stream straight into the content store as they pass, hashed on the way; nothing is
 * extracted to disk under a member's name. Then for each image: its config is validated, each
 * layer's diff id (the digest of the uncompressed tar) is checked against the config's
 * `rootfs.diff_ids`, and a Docker schema 2 manifest is made — layers keep the bytes they have
 * in the archive, as skopeo does: `application/vnd.docker.image.rootfs.diff.tar` for plain
 * tars, `.tar.gzip`/`.tar.zstd` when the member is compressed. Tags are set last, once
 * everything is stored.
 *
 * Errors: a malformed tar, a missing or invalid `manifest.json` or config, or a member it
 * names that is not there → `ERR_STORE_BAD_IMAGE` naming the member (and the field); a layer
 * whose diff id is wrong → `ERR_STORE_DIFF_ID_MISMATCH`; a member named by a digest that does
 * not match it → `ERR_STORE_DIGEST_MISMATCH`. Layers stored before a failure stay until
 * garbage collection; no tag is set.
 *
 * @example
 * ```ts
 * // docker save busybox:latest -o busybox.tar   (or skopeo copy … docker-archive:busybox.tar:busybox:latest)
 * const [img] = await importDockerArchive(content, index, 'busybox.tar')
 * img.refs       // ['docker.io/library/busybox:latest']
 * img.config     // { digest: 'sha256:…' } — the image id docker shows
 * ```
 */
export async function importDockerArchive(
  content: ContentStore,
  index: ImageIndex,
  tarPath: string,
  options: ImportDockerArchiveOptions = {},
): Promise<ImportedArchiveImage[]> {
  const file = path.resolve(tarPath)
  const signal = options.signal
  try {
    await fs.access(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError('ERR_STORE_NOT_FOUND', `docker archive ${file} does not exist`, { path: file })
    throw ioError('read', file, err)
  }
  const members = await readArchive(content, file, signal)

  const manifestMember = lookupMember(members, 'manifest.json')
  if (manifestMember === undefined) {
    throw archiveError('ERR_STORE_BAD_IMAGE', file, 'it has no manifest.json (is it a `docker save` tarball?)', { field: 'manifest.json' })
  }
  const manifestBytes = await memberBytes(content, manifestMember.member, MAX_JSON)
  let entries: z.output<typeof ArchiveManifestSchema>
  try {
    entries = checkDocument(ArchiveManifestSchema, JSON.parse(manifestBytes.toString('utf8')), { name: 'manifest.json' })
  } catch (err) {
    const e = err as OciError
    throw archiveError('ERR_STORE_BAD_IMAGE', file, err instanceof SyntaxError ? `manifest.json: not valid JSON (${err.message})` : e.message, {
      field: e.path ?? 'manifest.json',
      cause: err,
    })
  }

  // Which images, under which names.
  const wanted = entries.map((entry, i) => {
    const tags = (entry.RepoTags ?? []).map((t, j) => {
      try {
        return normalizeRef(t)
      } catch (err) {
        throw archiveError('ERR_STORE_BAD_IMAGE', file, `manifest.json[${i}].RepoTags[${j}]: ${(err as Error).message}`, { field: `manifest.json[${i}].RepoTags[${j}]`, cause: err })
      }
    })
    return { entry, i, tags }
  })
  let chosen = wanted
  if (options.name !== undefined) {
    const name = normalizeRef(options.name)
    chosen = wanted.filter((w) => w.tags.includes(name))
    if (chosen.length === 0) {
      const all = wanted.flatMap((w) => w.tags)
      throw new StoreError('ERR_STORE_NOT_FOUND', `docker archive ${file} has no image tagged ${name} (tags: ${all.join(', ') || 'none'})`, { path: file })
    }
  }
  if (chosen.length === 0) throw archiveError('ERR_STORE_BAD_IMAGE', file, 'manifest.json lists no image', { field: 'manifest.json' })
  if (options.ref !== undefined && chosen.length > 1) {
    throw new StoreError('ERR_STORE_INVALID', `docker archive ${file} holds ${chosen.length} images: choose one with { name } to import it as ${options.ref}`, { field: 'ref', path: file })
  }
  const ref = options.ref === undefined ? undefined : normalizeRef(options.ref)
  for (const w of chosen) {
    if (ref === undefined && w.tags.length === 0) {
      throw new StoreError('ERR_STORE_INVALID', `docker archive ${file}: manifest.json[${w.i}] has no RepoTags; say what to call it with { ref }`, { field: 'ref', path: file })
    }
  }

  const layerCache = new Map<string, { desc: Descriptor; diffId: Digest }>()
  const results: ImportedArchiveImage[] = []
  for (const { entry, i, tags } of chosen) {
    throwIfAborted(signal, `import ${file}`)
    const at = `manifest.json[${i}]`
    // The config.
    const cm = lookupMember(members, entry.Config)
    if (cm === undefined) {
      throw archiveError('ERR_STORE_BAD_IMAGE', file, `${at}.Config names \`${entry.Config}\`, which is not in the archive`, { field: `${at}.Config` })
    }
    const configBytes = await memberBytes(content, cm.member, MAX_JSON)
    const configDigest = digestOf(configBytes)
    const namedConfig = digestFromName(cm.key, 'config')
    if (namedConfig !== undefined && namedConfig !== configDigest) {
      throw archiveError('ERR_STORE_DIGEST_MISMATCH', file, `member \`${cm.key}\` hashes to ${configDigest}, not the digest its name says`, { digest: namedConfig })
    }
    let config: ImageConfig
    try {
      config = parseImageConfig(configBytes)
    } catch (err) {
      const e = err as OciError
      throw archiveError('ERR_STORE_BAD_IMAGE', file, `member \`${cm.key}\`: ${e.message}`, { ...(e.path ? { field: e.path } : {}), cause: err })
    }
    const diffIds = config.rootfs.diff_ids
    if (diffIds.length !== entry.Layers.length) {
      throw archiveError('ERR_STORE_BAD_IMAGE', file, `${at}.Layers lists ${entry.Layers.length} layers but its config's rootfs.diff_ids has ${diffIds.length}`, {
        field: `${at}.Layers`,
      })
    }
    // The layers.
    const layers: Descriptor[] = []
    for (const [j, layerName] of entry.Layers.entries()) {
      throwIfAborted(signal, `import ${file}`)
      const lm = lookupMember(members, layerName)
      if (lm === undefined) {
        throw archiveError('ERR_STORE_BAD_IMAGE', file, `${at}.Layers[${j}] names \`${layerName}\`, which is not in the archive`, { field: `${at}.Layers[${j}]` })
      }
      let layer = layerCache.get(lm.key)
      if (layer === undefined) {
        let desc: Descriptor
        let compression: Compression
        if (lm.member.kind === 'bytes') {
          compression = sniffCompression(lm.member.bytes)
          desc = await content.putBytes(LAYER_MEDIA_TYPE[compression], lm.member.bytes)
        } else {
          compression = lm.member.compression
          desc = { ...lm.member.desc, mediaType: LAYER_MEDIA_TYPE[compression] }
        }
        const named = digestFromName(lm.key, 'layer')
        if (named !== undefined && named !== desc.digest) {
          throw archiveError('ERR_STORE_DIGEST_MISMATCH', file, `member \`${lm.key}\` hashes to ${desc.digest}, not the digest its name says`, { digest: named })
        }
        layer = { desc, diffId: await diffIdOf(content, desc, compression) }
        layerCache.set(lm.key, layer)
      }
      if (layer.diffId !== diffIds[j]) {
        throw archiveError('ERR_STORE_DIFF_ID_MISMATCH', file, `layer ${j} (\`${lm.key}\`) has diff id ${layer.diffId}, but the config's rootfs.diff_ids[${j}] is ${diffIds[j]}`, {
          digest: layer.diffId,
          field: `config.rootfs.diff_ids[${j}]`,
        })
      }
      layers.push(layer.desc)
    }
    const configDesc = await content.putBytes(MediaType.DockerConfig, configBytes)
    const manifestDesc = await content.putJson(MediaType.DockerManifest, {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: configDesc,
      layers,
    })
    results.push({ refs: ref !== undefined ? [ref] : tags, manifest: manifestDesc, config: configDesc, layers })
  }
  // Names last: the store never names an image whose content it does not have.
  for (const r of results) for (const t of r.refs) await index.set(t, r.manifest)
  return results
}

// ---------------------------------------------------------------------------------------------
// Export

/** Options of {@link exportDockerArchive}. */
export interface ExportDockerArchiveOptions {
  /** For references that name an index: the platform to export (default: this host). */
  platform?: string | Platform
  signal?: AbortSignal
}

/** What {@link exportDockerArchive} wrote. */
export interface ExportedDockerArchive {
  /** The archive. */
  file: string
  /** One entry per distinct image, in `manifest.json` order. */
  images: { id: Digest; repoTags: string[]; layers: string[] }[]
}

const BLOCK = 512
const EPOCH = new Date(0)

/** A ustar header (with a pax header first when a field does not fit). */
function tarHeader(name: string, type: 'File' | 'Directory', size: number): Buffer {
  const h = new Header({ path: name, type, size, mode: type === 'Directory' ? 0o755 : 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: EPOCH })
  const block = Buffer.alloc(BLOCK)
  if (!h.encode(block, 0)) return block
  const pax = new Pax({ path: name, size, mtime: EPOCH })
  return Buffer.concat([pax.encode(), block])
}

function padding(size: number): Buffer {
  const rest = size % BLOCK
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest)
}

/** The tag a reference contributes to `RepoTags`: the familiar `name:tag`, none for a digest reference or an id. */
function repoTagOf(resolved: ResolvedImage, exact: boolean): string | undefined {
  if (!exact) return undefined
  const r = parseReference(resolved.ref)
  if (r.tag === undefined) return undefined
  return `${r.familiarName}:${r.tag}`
}

/**
 * Writes images into a tarball in the format `docker load` and skopeo's `docker-archive:`
 * read: `manifest.json`, each config as `<id hex>.json` (its exact bytes, so the image id is
 * kept), each layer uncompressed as `<diff id hex>/layer.tar` (decompressed through a
 * temporary under the store's `tmp/`, checked against the diff id, shared by every image that
 * has it), and the legacy `repositories` file. `RepoTags` are the references given (familiar
 * form, `busybox:latest`); an image given by id or digest has none, as with `docker save`.
 * The file is written to a temporary beside it, fsynced and renamed: a failure or crash never
 * leaves a partial archive under its name.
 *
 * @example
 * ```ts
 * await exportDockerArchive(content, index, ['busybox:latest', 'alpine:3.20'], '/tmp/ctr-images.tar')
 * // docker load -i /tmp/ctr-images.tar   or   skopeo copy docker-archive:/tmp/ctr-images.tar:busybox:latest oci:/tmp/bb:latest
 * ```
 */
export async function exportDockerArchive(
  content: ContentStore,
  index: ImageIndex,
  refs: string[],
  tarPath: string,
  options: ExportDockerArchiveOptions = {},
): Promise<ExportedDockerArchive> {
  if (refs.length === 0) throw new StoreError('ERR_STORE_INVALID', 'export docker archive: no image given', { field: 'refs' })
  const file = path.resolve(tarPath)
  const signal = options.signal

  // Resolve everything first: a bad reference fails before anything is written.
  const images: { id: Digest; repoTags: string[]; resolved: ResolvedImage }[] = []
  for (const q of refs) {
    const resolved = await resolveImage(content, index, q, options.platform)
    let exact = false
    try {
      exact = parseReference(q).toString() === resolved.ref
    } catch {
      exact = false
    }
    const tag = repoTagOf(resolved, exact)
    const id = resolved.configDesc.digest
    let image = images.find((i) => i.id === id && i.resolved.config.rootfs.diff_ids.join() === resolved.config.rootfs.diff_ids.join())
    if (image === undefined) {
      image = { id, repoTags: [], resolved }
      images.push(image)
    }
    if (tag !== undefined && !image.repoTags.includes(tag)) image.repoTags.push(tag)
  }

  const tmp = tempPathFor(file)
  const scratch: string[] = []
  const written = new Set<string>()
  const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = []
  const repositories: Record<string, Record<string, string>> = {}

  async function* archive(): AsyncGenerator<Buffer> {
    for (const image of images) {
      const { resolved } = image
      const configName = `${resolved.configDesc.digest.slice(resolved.configDesc.digest.indexOf(':') + 1)}.json`
      if (!written.has(configName)) {
        const bytes = await content.readBytes(resolved.configDesc)
        yield tarHeader(configName, 'File', bytes.length)
        yield bytes
        yield padding(bytes.length)
        written.add(configName)
      }
      const layerNames: string[] = []
      for (const [i, layer] of resolved.manifest.layers.entries()) {
        throwIfAborted(signal, `export ${file}`)
        const diffId = resolved.config.rootfs.diff_ids[i] as Digest
        const hex = diffId.slice(diffId.indexOf(':') + 1)
        const name = `${hex}/layer.tar`
        layerNames.push(name)
        if (written.has(name)) continue
        const compression = compressionOf(layer.mediaType)
        let source: string
        let size: number
        if (compression === 'none') {
          if (layer.digest !== diffId) {
            throw new StoreError('ERR_STORE_DIFF_ID_MISMATCH', `image ${resolved.ref}: layer ${i} is uncompressed but its digest ${layer.digest} is not its diff id ${diffId}`, {
              digest: layer.digest,
            })
          }
          source = content.path(layer.digest)
          size = layer.size
        } else {
          // Uncompressed size is not known in advance, and a tar header needs it: decompress to a temporary.
          source = path.join(content.paths.tmp, tempName(`layer-${hex.slice(0, 12)}.tar`))
          scratch.push(source)
          const v = new BlobVerifier({ digest: diffId, what: `image ${resolved.ref}: layer ${i} (uncompressed)` })
          await pipeline(
            decompress(Readable.from(content.read(layer), { objectMode: false }), compression),
            async function* (chunks: AsyncIterable<Buffer>) {
              for await (const c of chunks) {
                v.update(c)
                yield c
              }
            },
            createWriteStream(source, { flags: 'wx', highWaterMark: 1 << 20 }),
            ...(signal ? [{ signal }] : []),
          )
          v.verify()
          size = v.bytes
        }
        yield tarHeader(`${hex}/`, 'Directory', 0)
        yield tarHeader(name, 'File', size)
        // Uncompressed blobs are verified on the way out; decompressed ones were verified above.
        const check = compression === 'none' ? new BlobVerifier({ digest: layer.digest, size, what: `blob ${layer.digest}` }) : undefined
        for await (const chunk of createReadStream(source, { highWaterMark: 1 << 20 })) {
          check?.update(chunk as Buffer)
          yield chunk as Buffer
        }
        check?.verify()
        yield padding(size)
        written.add(name)
        if (compression !== 'none') {
          await fs.rm(source, { force: true })
          scratch.splice(scratch.indexOf(source), 1)
        }
      }
      manifest.push({ Config: configName, RepoTags: image.repoTags, Layers: layerNames })
      const top = layerNames.at(-1)?.split('/')[0]
      for (const t of image.repoTags) {
        const colon = t.lastIndexOf(':')
        const repo = t.slice(0, colon)
        if (top !== undefined) (repositories[repo] ??= {})[t.slice(colon + 1)] = top
      }
    }
    const m = Buffer.from(JSON.stringify(manifest))
    yield tarHeader('manifest.json', 'File', m.length)
    yield m
    yield padding(m.length)
    const r = Buffer.from(JSON.stringify(repositories))
    yield tarHeader('repositories', 'File', r.length)
    yield r
    yield padding(r.length)
    yield Buffer.alloc(BLOCK * 2)
  }

  try {
    await pipeline(
      Readable.from(archive(), { objectMode: false }),
      createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: 1 << 20 }),
      ...(signal ? [{ signal }] : []),
    )
    if (content.fsync) {
      const fh = await fs.open(tmp, 'r')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
    await fs.rename(tmp, file)
    if (content.fsync) await fsyncDir(path.dirname(file))
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined)
    if (err instanceof StoreError) throw err
    if (err instanceof OciError) {
      const code = err.code === 'ERR_OCI_DIGEST_MISMATCH' ? 'ERR_STORE_DIFF_ID_MISMATCH' : 'ERR_STORE_SIZE_MISMATCH'
      throw new StoreError(code, `export ${file}: ${err.message}`, { cause: err })
    }
    if ((err as Error).name === 'AbortError' || signal?.aborted) throw new StoreError('ERR_STORE_ABORTED', `export ${file}: aborted`, { cause: signal?.reason ?? err })
    throw ioError('write', file, err)
  } finally {
    for (const s of scratch) await fs.rm(s, { force: true }).catch(() => undefined)
  }
  return { file, images: images.map((i) => ({ id: i.id, repoTags: i.repoTags, layers: i.resolved.config.rootfs.diff_ids })) }
}
