/**
 * `@ctr/overlay-image`: a content-addressed image store for Linux — verified blobs, layers
 * unpacked once and safely, overlay snapshots (deep images too), commit to a new layer,
 * OCI layout and `docker save` import/export, garbage collection.
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
 * @packageDocumentation
 */
export {
  ImageStore,
  type ImageStoreOptions,
  type CommitOptions,
  type CommittedImage,
} from './image-store.js'
export { StoreError, type StoreErrorCode } from './errors.js'
export { StorePaths, hexOf, type SnapshotRecord } from './paths.js'
export { ContentStore, type ContentStoreOptions, type IngestOptions, type RefStore } from './content/store.js'
export { ImageIndex, normalizeRef, type ImageRecord } from './images/index-file.js'
export { resolveImage, type ResolvedImage } from './images/resolve.js'
export { inspectImage, listImages, type ImageInspect, type ImageSummary } from './images/inspect.js'
export { importLayout, exportLayout, type ImportLayoutOptions, type ImportedLayoutImage, type ExportLayoutOptions, type ExportedLayoutImage } from './images/layout.js'
export {
  importDockerArchive,
  exportDockerArchive,
  type ImportDockerArchiveOptions,
  type ImportedArchiveImage,
  type ExportDockerArchiveOptions,
  type ExportedDockerArchive,
} from './images/docker-archive.js'
export { collectGarbage, type GcResult } from './gc.js'
export * from './layers/index.js'
export * from './snapshots/index.js'
export * from './commit/index.js'
