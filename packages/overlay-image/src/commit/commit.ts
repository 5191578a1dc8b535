/**
 * Commit: a snapshot's changes become a new layer on top of its image, with a new config and
 * manifest in the content store, ready to push.
 *
 * The layer is streamed once, with no temporary tar on disk: upper directory walk → tar
 * (hashed on the way: the diff id) → compression → the content store's `ingest`, which writes
 * a temporary, hashes it and renames it into `blobs/` only when complete. The commit hashes
 * the compressed bytes as well and refuses a descriptor that does not match what it sent, so
 * nothing enters the store unverified, and the config (which names the diff id) and the
 * manifest (which names both) are written only after the layer is in. A crash at any point
 * leaves the content store's temporaries (removed when it is next opened) and, at worst, blobs
 * nothing refers to yet (garbage collection's business); the snapshot itself is only read.
 */
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { z } from 'zod'
import {
  Annotation,
  MediaType,
  isDigest,
  manifestMediaType,
  parseReference,
  type Descriptor,
  type ImageConfig,
  type Manifest,
  type History,
  type ContainerConfig,
} from '@ctr/oci'
import { StoreError, throwIfAborted } from '../errors.js'
import { compress } from '../layers/compression.js'
import { chainIds as chainIdsOf } from '../layers/chain-id.js'
import { hexOf, type SnapshotRecord, type StorePaths } from '../paths.js'
import type { Snapshot } from '../snapshots/snapshots.js'
import { diffUpper } from './diff.js'
import { tarStream, type TarEntry } from './tar-writer.js'

/**
 * Where the commit stores what it makes: the subset of `ContentStore` it uses (so anything
 * content-addressed with the same two methods will do).
 */
export interface CommitContent {
  /** Stores a stream whose digest is not known in advance; resolves with its descriptor. */
  ingest(data: AsyncIterable<Uint8Array>, opts?: { mediaType?: string; signal?: AbortSignal }): Promise<Descriptor>
  /** Stores a JSON document (serialised by the store); resolves with its descriptor. */
  putJson(mediaType: string, value: unknown): Promise<Descriptor>
}

/**
 * Changes to the image config, as `docker commit --change` applies them:
 * `entrypoint` without `cmd` clears the inherited `Cmd` (Dockerfile semantics: a new
 * ENTRYPOINT does not keep the base image's arguments), `env` entries replace variables of the
 * same name and keep the others, `labels` are merged (a `null` value removes a label), and
 * `exposedPorts` are added (`80` means `80/tcp`).
 */
export interface CommitChanges {
  cmd?: string[]
  entrypoint?: string[]
  /** `NAME=value` entries. */
  env?: string[]
  /** An absolute path. */
  workingDir?: string
  /** `user`, `uid`, `user:group` or `uid:gid`. */
  user?: string
  labels?: Record<string, string | null>
  /** `80`, `80/tcp`, `53/udp`, `9000/sctp`. */
  exposedPorts?: string[]
}

/** Progress of a commit: entries and uncompressed bytes of the layer so far. */
export interface CommitProgress {
  phase: 'layer' | 'config' | 'manifest'
  entries: number
  tarBytes: number
}

/** What {@link commitSnapshot} takes. */
export interface CommitArgs {
  paths: StorePaths
  /** The snapshot (or its record) whose upper directory becomes the layer. It must not be read-only. */
  snapshot: Snapshot | SnapshotRecord
  /** The image the snapshot was prepared from, parsed. Its layers must be the snapshot's. */
  base: { manifest: Manifest; config: ImageConfig }
  content: CommitContent
  /** Layer compression (default `gzip`). */
  compression?: 'gzip' | 'zstd' | 'none'
  /** gzip 0–9 (default 6), zstd 1–19 (default 3). */
  level?: number
  /**
   * The manifest family. Default: the base image's — except that a Docker base image committed
   * with zstd becomes an OCI image (Docker's schema 2 has no zstd layer type; the base layers'
   * media types are converted as `skopeo copy --format oci` does, the blobs are unchanged).
   * `docker` with `zstd` is `ERR_STORE_UNSUPPORTED`.
   */
  format?: 'oci' | 'docker'
  /** One mtime for every entry of the layer, and the `created` time of config and history (reproducible commits). */
  mtime?: Date
  /** The `created` time (default: `mtime`, else now). */
  created?: Date
  author?: string
  /** The history entry's comment. */
  message?: string
  changes?: CommitChanges
  /** Annotations of the new manifest (OCI only), besides the base image ones set by default. */
  annotations?: Record<string, string>
  signal?: AbortSignal
  onProgress?: (p: CommitProgress) => void
}

/** What {@link commitSnapshot} made. */
export interface CommitResult {
  manifestDesc: Descriptor
  manifest: Manifest
  configDesc: Descriptor
  config: ImageConfig
  layerDesc: Descriptor
  /** The digest of the uncompressed layer tar (the new `rootfs.diff_ids` entry). */
  diffId: string
}

const ChangesSchema = z.strictObject({
  cmd: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  env: z.array(z.string().regex(/^[^=]+=/, 'expected NAME=value')).optional(),
  workingDir: z.string().startsWith('/', 'must be an absolute path').optional(),
  user: z.string().optional(),
  labels: z.record(z.string(), z.string().nullable()).optional(),
  exposedPorts: z.array(z.string().regex(/^\d{1,5}(\/(tcp|udp|sctp))?$/, 'expected a port like 80, 80/tcp or 53/udp')).optional(),
})

const LAYER_TYPES = {
  oci: { none: MediaType.OciLayer, gzip: MediaType.OciLayerGzip, zstd: MediaType.OciLayerZstd },
  docker: { none: MediaType.DockerLayer, gzip: MediaType.DockerLayerGzip, zstd: undefined },
} as const

/** The same blob under the other family's media type (what `skopeo copy --format` does). */
const TO_OCI: Record<string, string> = {
  [MediaType.DockerConfig]: MediaType.OciConfig,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
  [MediaType.DockerForeignLayer]: MediaType.OciLayerNondistributable,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
}
const TO_DOCKER: Record<string, string> = {
  [MediaType.OciConfig]: MediaType.DockerConfig,
  [MediaType.OciLayer]: MediaType.DockerLayer,
  [MediaType.OciLayerGzip]: MediaType.DockerLayerGzip,
  [MediaType.OciLayerNondistributable]: MediaType.DockerForeignLayer,
  [MediaType.OciLayerNondistributableGzip]: MediaType.DockerForeignLayerGzip,
}

function invalid(field: string, message: string): StoreError {
  return new StoreError('ERR_STORE_INVALID', `commit: ${field}: ${message}`, { field })
}

/**
 * Commits a snapshot: its upper directory becomes a new layer (sorted, whiteouts and opaque
 * directories as OCI markers, compressed), then a config (the base's, with the layer's diff id
 * appended to `rootfs.diff_ids`, a history entry, `changes` applied) and a manifest (the base's
 * layers plus the new one) are stored. Tagging the result is the caller's business.
 *
 * With `mtime` (and the same snapshot content, base and options) two commits give the same
 * layer, config and manifest digests.
 *
 * The upper directory is read while the layer streams: freeze or stop the container first, as
 * `docker commit` pauses it (a file that shrinks under the walk fails the commit with
 * `ERR_STORE_IO`; one that grows is cut at the size it had when its entry was made).
 *
 * Throws `ERR_STORE_INVALID` for a read-only snapshot, a base image whose layers are not the
 * snapshot's, or bad `changes`; `ERR_STORE_UNSUPPORTED` for an upper directory that is not
 * self-contained (see `diff.ts`) or Docker + zstd; `ERR_STORE_ABORTED`; `ERR_STORE_IO`.
 *
 * @example
 * ```ts
 * const r = await commitSnapshot({
 *   paths, snapshot: snap, base: { manifest, config }, content,
 *   compression: 'zstd', mtime: new Date(0), message: 'add curl',
 *   changes: { cmd: ['/bin/sh'], env: ['LANG=C.UTF-8'] },
 * })
 * await content.tag('mine/busybox:v2', r.manifestDesc)
 * ```
 */
export async function commitSnapshot(args: CommitArgs): Promise<CommitResult> {
  const record: SnapshotRecord = 'record' in args.snapshot ? args.snapshot.record : args.snapshot
  const what = `commit snapshot ${record.id}`
  if (record.readonly) throw invalid('snapshot', `snapshot ${record.id} is read-only: it has no changes to commit`)
  const compression = args.compression ?? 'gzip'
  if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') throw invalid('compression', `expected gzip, zstd or none, got ${String(compression)}`)
  const changes = args.changes === undefined ? undefined : parseChanges(args.changes)
  for (const key of ['mtime', 'created'] as const) {
    const d = args[key]
    if (d !== undefined && !(d instanceof Date && Number.isFinite(d.getTime()))) throw invalid(key, 'not a valid date')
  }

  // The base must be the image the snapshot's layers come from.
  const { manifest: baseManifest, config: baseConfig } = args.base
  const diffIds = baseConfig.rootfs?.diff_ids ?? []
  if (diffIds.length !== baseManifest.layers.length) {
    throw new StoreError('ERR_STORE_BAD_IMAGE', `${what}: the base config lists ${diffIds.length} diff ids for ${baseManifest.layers.length} layers`, { field: 'base' })
  }
  const expected = chainIdsOf(diffIds).map(hexOf)
  if (expected.length !== record.chainIds.length || expected.some((c, i) => c !== hexOf(record.chainIds[i]!))) {
    throw invalid('base', `snapshot ${record.id} was not prepared from this image's layers`)
  }

  const baseFormat = manifestMediaType(baseManifest) === MediaType.DockerManifest ? 'docker' : 'oci'
  let format = args.format ?? baseFormat
  if (compression === 'zstd' && format === 'docker') {
    if (args.format === 'docker') {
      throw new StoreError('ERR_STORE_UNSUPPORTED', `${what}: Docker image manifests have no zstd layer type; use gzip, or format 'oci'`, { field: 'format' })
    }
    format = 'oci'
  }
  const layerMediaType = LAYER_TYPES[format][compression]!

  const upper = args.paths.snapshot(record.id) + '/upper'
  const signal = args.signal
  throwIfAborted(signal, what)
  try {
    if (!(await stat(upper)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
  } catch (err) {
    throw new StoreError('ERR_STORE_NOT_FOUND', `${what}: no upper directory \`${upper}\` (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { path: upper, cause: err })
  }

  // ---- the layer
  const internal = new AbortController()
  const onOuterAbort = (): void => internal.abort(signal?.reason)
  signal?.addEventListener('abort', onOuterAbort, { once: true })
  let entries = 0
  let tarBytes = 0
  let tarDone = false
  let sourceError: unknown
  const tarHash = createHash('sha256')
  const blobHash = createHash('sha256')
  let blobSize = 0
  const progress = (phase: CommitProgress['phase']): void => args.onProgress?.({ phase, entries, tarBytes })

  async function* tarChunks(): AsyncGenerator<Buffer> {
    try {
      const onEntry = (_e: TarEntry, bytes: number): void => {
        entries++
        tarBytes = bytes
        progress('layer')
      }
      for await (const chunk of tarStream(diffUpper(upper, { signal: internal.signal }), {
        ...(args.mtime ? { mtime: args.mtime } : {}),
        signal: internal.signal,
        onEntry,
      })) {
        tarHash.update(chunk)
        yield chunk
      }
      tarDone = true
    } catch (err) {
      // The store must not keep a layer cut short: abort the ingest before the compressor can
      // finish a well-formed (but truncated) stream.
      sourceError = err
      internal.abort(err)
      throw err
    }
  }
  async function* counted(compressed: Readable): AsyncGenerator<Uint8Array> {
    for await (const chunk of compressed) {
      blobHash.update(chunk as Buffer)
      blobSize += (chunk as Buffer).length
      yield chunk as Buffer
    }
  }

  let layerDesc: Descriptor
  try {
    const tar = Readable.from(tarChunks(), { objectMode: false, highWaterMark: 1024 * 1024 })
    const compressed = compress(tar, compression, args.level === undefined ? {} : { level: args.level })
    try {
      layerDesc = await args.content.ingest(counted(compressed), { mediaType: layerMediaType, signal: internal.signal })
    } finally {
      if (!tar.destroyed) tar.destroy()
      if (!compressed.destroyed) compressed.destroy()
    }
  } catch (err) {
    throw translate(sourceError ?? err, signal, what)
  } finally {
    signal?.removeEventListener('abort', onOuterAbort)
  }
  throwIfAborted(signal, what)
  if (!tarDone) throw new StoreError('ERR_STORE_IO', `${what}: the layer stream ended before the tar was complete`)
  const blobDigest = `sha256:${blobHash.digest('hex')}`
  if (layerDesc.digest !== blobDigest || layerDesc.size !== blobSize) {
    throw new StoreError(
      'ERR_STORE_DIGEST_MISMATCH',
      `${what}: the content store recorded the layer as ${layerDesc.digest} (${layerDesc.size} bytes) but ${blobDigest} (${blobSize} bytes) was written`,
      { digest: layerDesc.digest },
    )
  }
  layerDesc = { mediaType: layerMediaType, digest: layerDesc.digest, size: layerDesc.size }
  const diffId = `sha256:${tarHash.digest('hex')}`

  // ---- the config
  progress('config')
  const created = (args.created ?? args.mtime ?? new Date()).toISOString()
  const config = structuredClone(baseConfig) as ImageConfig
  config.created = created
  if (args.author !== undefined) config.author = args.author
  config.rootfs = { ...config.rootfs, type: 'layers', diff_ids: [...diffIds, diffId as ImageConfig['rootfs']['diff_ids'][number]] }
  const history: History = { created, created_by: 'ctr commit' }
  if (args.author !== undefined) history.author = args.author
  if (args.message !== undefined) history.comment = args.message
  config.history = [...(config.history ?? []), history]
  if (changes) config.config = applyChanges(config.config ?? {}, changes)
  const configType = format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig
  throwIfAborted(signal, what)
  const configDesc0 = await args.content.putJson(configType, config)
  const configDesc: Descriptor = { mediaType: configType, digest: configDesc0.digest, size: configDesc0.size }

  // ---- the manifest
  progress('manifest')
  const layers = [...baseManifest.layers.map((l) => convertLayer(l, format, baseFormat, what)), layerDesc]
  let manifest: Manifest
  if (format === 'oci') {
    const annotations: Record<string, string> = {}
    if (isDigest(record.manifestDigest)) annotations[Annotation.BaseDigest] = record.manifestDigest
    const baseName = normalizedRef(record.image)
    if (baseName !== undefined) annotations[Annotation.BaseName] = baseName
    Object.assign(annotations, args.annotations)
    manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers, ...(Object.keys(annotations).length ? { annotations } : {}) }
  } else {
    manifest = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config: configDesc, layers }
  }
  throwIfAborted(signal, what)
  const manifestDesc0 = await args.content.putJson(manifest.mediaType!, manifest)
  const manifestDesc: Descriptor = { mediaType: manifest.mediaType!, digest: manifestDesc0.digest, size: manifestDesc0.size }
  return { manifestDesc, manifest, configDesc, config, layerDesc, diffId }
}

function parseChanges(changes: CommitChanges): z.output<typeof ChangesSchema> {
  const r = ChangesSchema.safeParse(changes)
  if (!r.success) {
    const iss = r.error.issues[0]
    throw invalid(['changes', ...(iss?.path ?? [])].join('.'), iss?.message ?? 'invalid')
  }
  return r.data
}

/** Applies `docker commit --change`-style changes to a container config (a copy). */
function applyChanges(base: ContainerConfig, c: z.output<typeof ChangesSchema>): ContainerConfig {
  const out: ContainerConfig = { ...base }
  if (c.entrypoint !== undefined) {
    out.Entrypoint = c.entrypoint
    if (c.cmd === undefined) delete out.Cmd
  }
  if (c.cmd !== undefined) out.Cmd = c.cmd
  if (c.env !== undefined) {
    const env = [...(base.Env ?? [])]
    for (const e of c.env) {
      const name = e.slice(0, e.indexOf('='))
      const i = env.findIndex((x) => x === name || x.startsWith(name + '='))
      if (i >= 0) env[i] = e
      else env.push(e)
    }
    out.Env = env
  }
  if (c.workingDir !== undefined) out.WorkingDir = c.workingDir
  if (c.user !== undefined) out.User = c.user
  if (c.labels !== undefined) {
    const labels: Record<string, string> = { ...(base.Labels ?? {}) }
    for (const [k, v] of Object.entries(c.labels)) {
      if (v === null) delete labels[k]
      else labels[k] = v
    }
    out.Labels = labels
  }
  if (c.exposedPorts !== undefined) {
    const ports: Record<string, unknown> = { ...(base.ExposedPorts ?? {}) }
    for (const p of c.exposedPorts) ports[p.includes('/') ? p : `${p}/tcp`] = {}
    out.ExposedPorts = ports
  }
  return out
}

/** A base layer's descriptor in the new manifest's family (the blob is the same). */
function convertLayer(l: Descriptor, format: 'oci' | 'docker', baseFormat: 'oci' | 'docker', what: string): Descriptor {
  if (format === baseFormat) return l
  const table = format === 'oci' ? TO_OCI : TO_DOCKER
  const mediaType = table[l.mediaType]
  if (mediaType === undefined) {
    throw new StoreError('ERR_STORE_UNSUPPORTED', `${what}: base layer ${l.digest} (${l.mediaType}) has no ${format === 'oci' ? 'OCI' : 'Docker'} media type`, {
      digest: l.digest,
      field: 'format',
    })
  }
  return { ...l, mediaType }
}

function normalizedRef(ref: string): string | undefined {
  try {
    return parseReference(ref).toString()
  } catch {
    return undefined
  }
}

function translate(err: unknown, signal: AbortSignal | undefined, what: string): unknown {
  if (err instanceof StoreError) return err
  if (signal?.aborted) return new StoreError('ERR_STORE_ABORTED', `${what}: aborted`, { cause: signal.reason })
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return new StoreError('ERR_STORE_IO', `${what}: ${code ?? (err as Error | undefined)?.message ?? String(err)}`, { cause: err })
}
