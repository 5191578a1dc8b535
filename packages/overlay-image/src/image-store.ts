/**
 * `ImageStore`: the one object users hold. It composes the content store (verified blobs),
 * the image index (`images.json`), the layer unpacker, the snapshotter and the committer over
 * one root directory, and is itself a {@link ContentSink}/{@link ContentSource}, so
 * `client.pull(ref, { into: store })` lands in it and `client.push(…, { from: store })`
 * reads from it.
 */
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import type { Descriptor, Platform } from '@ctr/oci'
import type { ContentSink, ContentSource } from '@ctr/registry-client'
import { commitSnapshot, type CommitChanges } from './commit/commit.js'
import { ContentStore } from './content/store.js'
import { StoreError } from './errors.js'
import { collectGarbage, type GcResult } from './gc.js'
import { exportDockerArchive, importDockerArchive } from './images/docker-archive.js'
import { ImageIndex, normalizeRef } from './images/index-file.js'
import { inspectImage, listImages, type ImageInspect, type ImageSummary } from './images/inspect.js'
import { exportLayout, importLayout, type ExportLayoutOptions, type ExportedLayoutImage, type ImportedLayoutImage } from './images/layout.js'
import { resolveImage, type ResolvedImage } from './images/resolve.js'
import { imageDigests } from './images/walk.js'
import { cleanLayerTemporaries, unpackImageLayers } from './layers/unpack.js'
import { StorePaths } from './paths.js'
import { recoverSnapshots, Snapshots, type MountTarget, type Snapshot } from './snapshots/index.js'

/** Options of {@link ImageStore.open}. */
export interface ImageStoreOptions {
  /**
   * Flush blobs, layers and metadata to disk before they count as stored (default true).
   * Off is faster, as skopeo and GNU tar are, but a power loss can then lose recent writes.
   */
  fsync?: boolean
  /**
   * Flush snapshot records (default: as `fsync`). Throwaway containers can turn this off: a
   * snapshot lost in a power cut is one nobody can use anyway.
   */
  snapshotFsync?: boolean
}

/** Progress of {@link ImageStore.unpack}: bytes of compressed layer read so far. */
export interface UnpackProgress {
  layer: string
  bytes: number
  total: number
}

/** Options of {@link ImageStore.commit}. */
export interface CommitOptions {
  /** The reference to name the new image by (`mine/busybox:v2`). */
  ref?: string
  /** Layer compression: `gzip` (default), `zstd` or `none`. */
  compression?: 'gzip' | 'zstd' | 'none'
  /** A fixed mtime for every entry, for reproducible layers. */
  mtime?: Date
  author?: string
  /** The history comment. */
  message?: string
  /** Config changes, as `docker commit --change`. */
  changes?: CommitChanges
  signal?: AbortSignal
}

/** What {@link ImageStore.commit} made. */
export interface CommittedImage {
  /** The reference it was tagged with, normalised (when `ref` was given). */
  ref?: string
  /** The new manifest's digest. */
  digest: string
  /** The new image id (config digest). */
  id: string
  manifest: Descriptor
  layer: Descriptor
  diffId: string
}

/**
 * A content-addressed image store with overlay snapshots.
 *
 * @example
 * ```ts
 * import { ImageStore } from '@ctr/overlay-image'
 * const store = await ImageStore.open('/tmp/ctr-store')
 * await store.importLayout('/path/to/busybox-oci-layout', 'busybox:latest')
 * const snap = await store.prepare('busybox:latest', 'c1')  // snap.rootfs: a mounted dir
 * // ... write files under snap.rootfs ...
 * const image = await store.commit('c1', { ref: 'mine/busybox:v2' })
 * await store.remove('c1')
 * ```
 */
export class ImageStore implements ContentSink, ContentSource {
  readonly root: string
  readonly paths: StorePaths
  readonly content: ContentStore
  readonly index: ImageIndex
  readonly snapshots: Snapshots
  readonly #fsync: boolean
  /** unpack() results by reference and platform (see there). */
  readonly #unpacked = new Map<string, { digest: string; image: ResolvedImage; chainIds: string[] }>()

  private constructor(paths: StorePaths, content: ContentStore, index: ImageIndex, snapshots: Snapshots, fsync: boolean) {
    this.root = paths.root
    this.paths = paths
    this.content = content
    this.index = index
    this.snapshots = snapshots
    this.#fsync = fsync
  }

  /**
   * Opens a store (creating its directories) and removes what a crash left: temporary blobs,
   * half-unpacked layers, half-made or half-removed snapshots.
   */
  static async open(root = '/var/lib/ctr', options: ImageStoreOptions = {}): Promise<ImageStore> {
    if (typeof root !== 'string' || root === '') throw new StoreError('ERR_STORE_INVALID', 'root: a directory path', { field: 'root' })
    const paths = new StorePaths(path.resolve(root))
    const fsync = options.fsync ?? true
    await fs.mkdir(paths.root, { recursive: true, mode: 0o711 })
    await Promise.all([fs.mkdir(paths.layers, { recursive: true }), fs.mkdir(paths.snapshots, { recursive: true, mode: 0o700 }), fs.mkdir(paths.links, { recursive: true })])
    const index = await ImageIndex.load(paths, { fsync })
    const content = await ContentStore.open(paths, { fsync, refs: index })
    await cleanLayerTemporaries(paths)
    await recoverSnapshots(paths)
    const snapshots = new Snapshots(paths, { fsync: options.snapshotFsync ?? fsync })
    return new ImageStore(paths, content, index, snapshots, fsync)
  }

  // ---- ContentSink / ContentSource ---------------------------------------------------------

  /** Whether a blob is stored. */
  has(desc: Descriptor): Promise<boolean> {
    return this.content.has(desc)
  }

  /** Stores a blob from a stream, verified (a pull writes through this). */
  write(desc: Descriptor, data: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    return this.content.write(desc, data, signal)
  }

  /**
   * Names an image. With a descriptor (what a pull does): `ref` → that manifest or index. With
   * a string: a new name for an existing image (`docker tag SOURCE TARGET`).
   */
  async tag(ref: string, target: Descriptor | string): Promise<void> {
    if (typeof target === 'string') {
      const found = await this.index.lookup(target, imageDigests(this.content))
      await this.content.tag(ref, found.record.descriptor)
      return
    }
    await this.content.tag(ref, target)
  }

  /** The descriptor a reference names (for a push). */
  resolve(name: string): Promise<Descriptor | undefined> {
    return this.content.resolve(name)
  }

  /** A blob's bytes. */
  read(desc: Descriptor): AsyncIterable<Uint8Array> {
    return this.content.read(desc)
  }

  // ---- images ------------------------------------------------------------------------------

  /** Every image (one row per reference). */
  images(options: { platform?: string } = {}): Promise<ImageSummary[]> {
    return listImages(this.content, this.index, options)
  }

  /** Whether a reference (or id) names an image in the store. */
  async hasImage(ref: string): Promise<boolean> {
    try {
      return (await this.index.get(normalizeRef(ref))) !== undefined
    } catch {
      return false
    }
  }

  /** A reference, digest or id → one platform's manifest and config. */
  resolveImage(ref: string, platform?: string | Platform): Promise<ResolvedImage> {
    return resolveImage(this.content, this.index, ref, platform)
  }

  /** `docker inspect` of an image: Entrypoint, Cmd, Env, WorkingDir, User, ports, volumes, labels, history. */
  async inspect(ref: string, platform?: string | Platform): Promise<ImageInspect> {
    return inspectImage(await this.resolveImage(ref, platform))
  }

  /**
   * Removes a reference (`docker rmi`). The blobs stay until {@link gc}. An image a snapshot
   * was prepared from is refused unless `force`.
   */
  async untag(ref: string, options: { force?: boolean } = {}): Promise<void> {
    const normalized = normalizeRef(ref)
    const record = await this.index.get(normalized)
    if (!record) throw new StoreError('ERR_STORE_NOT_FOUND', `image ${ref}: no such reference`)
    if (!options.force) {
      const users = (await this.snapshots.list()).filter((s) => normalizeRefSafe(s.record.image) === normalized)
      if (users.length) {
        throw new StoreError('ERR_STORE_IN_USE', `image ${ref} is used by snapshot ${users.map((s) => s.id).join(', ')}`)
      }
    }
    await this.index.delete(normalized)
  }

  /**
   * Imports an image from an OCI image layout directory, named `ref` in the store (a string
   * second argument is the ref). Without one, the layout's own ref name is used.
   */
  importLayout(dir: string, options: string | { ref?: string; name?: string; signal?: AbortSignal } = {}): Promise<ImportedLayoutImage> {
    return importLayout(this.content, this.index, dir, typeof options === 'string' ? { ref: options } : options)
  }

  /** Exports an image into an OCI image layout directory. */
  exportLayout(ref: string, dir: string, options: ExportLayoutOptions = {}): Promise<ExportedLayoutImage> {
    return exportLayout(this.content, this.index, ref, dir, options)
  }

  /** Imports a `docker save` tarball (every image in it, by its RepoTags, or as `ref`). */
  importDockerArchive(file: string, options: { ref?: string; name?: string; signal?: AbortSignal } = {}): ReturnType<typeof importDockerArchive> {
    return importDockerArchive(this.content, this.index, file, options)
  }

  /** Writes images into a tarball `docker load` and skopeo's `docker-archive:` read. */
  exportDockerArchive(refs: string[], file: string, options: { signal?: AbortSignal } = {}): ReturnType<typeof exportDockerArchive> {
    return exportDockerArchive(this.content, this.index, refs, file, options)
  }

  /** Removes blobs and unpacked layers no image or snapshot uses. */
  gc(options: { dryRun?: boolean; signal?: AbortSignal; graceMs?: number } = {}): Promise<GcResult> {
    return collectGarbage(this.paths, this.content, this.index, options)
  }

  // ---- layers and snapshots ----------------------------------------------------------------

  /** Unpacks an image's layers (each once per chain id); returns the chain ids, bottom first. */
  async unpack(ref: string, options: { platform?: string | Platform; signal?: AbortSignal; onProgress?: (p: UnpackProgress) => void } = {}): Promise<{ image: ResolvedImage; chainIds: string[] }> {
    // Manifests, configs and unpacked layers never change: while the reference still names the
    // same manifest or index (one read of images.json) and the top layer is still there, the
    // answer of the last call stands — no re-parsing, no chain ids, no check of every layer.
    const key = `${ref}\0${typeof options.platform === 'string' ? options.platform : JSON.stringify(options.platform ?? '')}`
    const record = await this.#record(ref)
    const hit = this.#unpacked.get(key)
    if (hit && record && hit.digest === record.descriptor.digest && existsSync(this.paths.layerMeta(hit.chainIds.at(-1) ?? ''))) {
      return { image: hit.image, chainIds: [...hit.chainIds] }
    }
    const image = await this.resolveImage(ref, options.platform)
    const chainIds = await unpackImageLayers(this.paths, (digest) => this.content.path(digest), image.manifest.layers, image.config.rootfs.diff_ids, {
      fsync: this.#fsync,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    })
    if (record && chainIds.length > 0) this.#unpacked.set(key, { digest: record.descriptor.digest, image, chainIds: [...chainIds] })
    return { image, chainIds }
  }

  /** The index record a reference names, or undefined (digests and ids have none). */
  async #record(ref: string): Promise<{ descriptor: Descriptor } | undefined> {
    try {
      return await this.index.get(normalizeRef(ref))
    } catch {
      return undefined
    }
  }

  /**
   * A writable snapshot of an image (unpacked first if needed): an overlay of its layers with
   * its own upper directory, mounted on `snapshot.rootfs` unless `mount: false` (then
   * `snapshot.mount` says how to mount it elsewhere, e.g. in a container's mount namespace).
   * `mountTargets` lists the mount points a container will need; those the image lacks come
   * from a shared init layer made once per image (see {@link MountTarget}), not from the
   * snapshot's own upper directory.
   *
   * @example
   * ```ts
   * const snap = await store.prepare('busybox:latest', 'c1', {
   *   mount: false, volatile: true,
   *   mountTargets: [{ path: '/etc/hosts', type: 'file' }, { path: '/proc', type: 'directory', mode: 0o555 }],
   * })
   * ```
   */
  async prepare(
    image: string,
    id: string,
    options: { readonly?: boolean; mount?: boolean; volatile?: boolean; mountTargets?: MountTarget[]; platform?: string | Platform; signal?: AbortSignal } = {},
  ): Promise<Snapshot> {
    const { image: resolved, chainIds } = await this.unpack(image, options)
    return this.snapshots.prepare({
      id,
      image,
      manifestDigest: resolved.manifestDesc.digest,
      chainIds,
      ...(options.readonly !== undefined ? { readonly: options.readonly } : {}),
      ...(options.mount !== undefined ? { mount: options.mount } : {}),
      ...(options.volatile ? { volatile: true } : {}),
      ...(options.mountTargets ? { mountTargets: options.mountTargets } : {}),
    })
  }

  /** A snapshot by id. */
  snapshot(id: string): Promise<Snapshot> {
    return this.snapshots.get(id)
  }

  /** Unmounts and deletes a snapshot; a missing one is fine (idempotent, crash-safe). */
  remove(id: string): Promise<void> {
    return this.snapshots.remove(id)
  }

  /**
   * Turns a snapshot's changes into a new layer on top of its image: a new config and
   * manifest in the store, tagged `ref` when given, ready to push.
   */
  async commit(id: string, options: CommitOptions = {}): Promise<CommittedImage> {
    const snap = await this.snapshots.get(id)
    const digest = snap.record.manifestDigest
    const base = await resolveImage(this.content, this.index, digest)
    const r = await commitSnapshot({
      paths: this.paths,
      snapshot: snap,
      base: { manifest: base.manifest, config: base.config },
      content: this.content,
      ...(options.compression ? { compression: options.compression } : {}),
      ...(options.mtime ? { mtime: options.mtime } : {}),
      ...(options.author ? { author: options.author } : {}),
      ...(options.message ? { message: options.message } : {}),
      ...(options.changes ? { changes: options.changes } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    })
    let ref: string | undefined
    if (options.ref) {
      ref = normalizeRef(options.ref)
      await this.content.tag(ref, r.manifestDesc)
    }
    return { ...(ref ? { ref } : {}), digest: r.manifestDesc.digest, id: r.configDesc.digest, manifest: r.manifestDesc, layer: r.layerDesc, diffId: r.diffId }
  }
}

function normalizeRefSafe(ref: string): string {
  try {
    return normalizeRef(ref)
  } catch {
    return ref
  }
}
