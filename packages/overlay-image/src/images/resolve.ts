/**
 * From a reference (or image id) to the platform manifest and config a container runs from.
 */
import {
  ImageConfigSchema,
  PlatformNotFoundError,
  formatPlatform,
  hostPlatform,
  isConfig,
  matchPlatform,
  normalizePlatform,
  parsePlatform,
  selectManifest,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Manifest,
  type Platform,
} from '@ctr/oci'
import { StoreError } from '../errors.js'
import type { ContentStore } from '../content/store.js'
import type { ImageIndex } from './index-file.js'
import { MAX_INDEX_DEPTH, imageDigests, walkImage } from './walk.js'

/** An image resolved down to one platform's manifest and config. */
export interface ResolvedImage {
  /** The normalised reference of the record found (the first one, for an id that several tags name). */
  ref: string
  /** The index the reference names, when it names one. */
  indexDigest?: Digest
  /** The platform manifest (with `platform` when it came from an index entry). */
  manifestDesc: Descriptor
  /** The platform manifest (OCI or Docker schema 2). */
  manifest: Manifest
  /** The config's descriptor (its digest is the image id). */
  configDesc: Descriptor
  /** The image config. */
  config: ImageConfig
}

function toPlatform(p: string | Platform): Platform {
  return typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p)
}

function notFound(ref: string, what: string, digest?: string): StoreError {
  return new StoreError('ERR_STORE_NOT_FOUND', `image ${ref}: ${what}`, digest !== undefined ? { digest } : {})
}

/** Re-throws a missing blob as `ERR_STORE_NOT_FOUND` that names the image too. */
function rethrow(err: unknown, ref: string): never {
  if (err instanceof StoreError && err.code === 'ERR_STORE_NOT_FOUND') {
    throw new StoreError('ERR_STORE_NOT_FOUND', `image ${ref}: ${err.message}`, { ...(err.digest ? { digest: err.digest } : {}), cause: err })
  }
  throw err
}

/**
 * Resolves a reference, digest reference, image id or unique id/digest prefix (see
 * {@link ImageIndex.lookup}) to one platform's manifest and config, following an OCI index
 * or Docker manifest list to the best entry for `platform` (default: this host; `@ctr/oci`'s
 * matching rules, attestations skipped). Both OCI and Docker schema 2 media types are handled.
 *
 * Errors: an unknown image, or an index with no entry for the platform →
 * `ERR_STORE_NOT_FOUND` naming the reference (and the platforms available); a manifest or
 * config the store lacks → `ERR_STORE_NOT_FOUND` naming the digest; a manifest whose config is
 * not an image config (an artifact) → `ERR_STORE_UNSUPPORTED`; invalid documents →
 * `ERR_STORE_BAD_IMAGE` naming the field.
 *
 * @example
 * ```ts
 * const img = await resolveImage(content, index, 'busybox')             // this host's platform
 * const arm = await resolveImage(content, index, 'busybox:multi', 'linux/arm64')
 * img.config.config?.Cmd    // ['/bin/sh']
 * img.configDesc.digest     // the image id
 * ```
 */
export async function resolveImage(content: ContentStore, index: ImageIndex, refOrId: string, platform?: string | Platform): Promise<ResolvedImage> {
  const want = platform === undefined ? undefined : toPlatform(platform)
  const found = await index.lookup(refOrId, imageDigests(content))
  const record = found.record
  const ref = record.ref

  // Where to start: the record's descriptor, or the manifest a digest or id picked out.
  let start = record.descriptor
  let indexDigest: Digest | undefined
  if (found.by !== 'ref' && found.matched !== record.descriptor.digest) {
    const tree = await walkImage(content, record.descriptor).catch((err: unknown) => rethrow(err, ref))
    const hit = tree.manifests.find((m) => (found.by === 'id' ? m.manifest.config.digest : m.desc.digest) === found.matched)
    if (hit === undefined) throw notFound(ref, `${found.matched} is not in the store`, found.matched)
    start = hit.desc
    if (tree.indexes[0] !== undefined) indexDigest = tree.indexes[0].desc.digest
  }

  const target = want ?? hostPlatform()
  let desc = start
  let manifest: Manifest | undefined
  for (let depth = 0; manifest === undefined; depth++) {
    if (depth > MAX_INDEX_DEPTH) throw new StoreError('ERR_STORE_BAD_IMAGE', `image ${ref}: indexes nest more than ${MAX_INDEX_DEPTH} deep`)
    const parsed = await content.readManifest(desc).catch((err: unknown) => rethrow(err, ref))
    if (parsed.kind === 'manifest') {
      manifest = parsed.value
      break
    }
    indexDigest ??= desc.digest
    let child: Descriptor
    try {
      child = selectManifest(parsed.value, target)
    } catch (err) {
      if (err instanceof PlatformNotFoundError) {
        throw notFound(ref, `no manifest for ${formatPlatform(target)} (available: ${err.available.map(formatPlatform).join(', ') || 'none'})`)
      }
      throw err
    }
    if (!(await content.has(child))) {
      throw notFound(ref, `the ${formatPlatform(child.platform ?? target)} manifest ${child.digest} is not in the store (pull the image for that platform)`, child.digest)
    }
    desc = child
  }

  if (!isConfig(manifest.config.mediaType)) {
    throw new StoreError('ERR_STORE_UNSUPPORTED', `image ${ref}: manifest ${desc.digest} is not a runnable image (config media type ${manifest.config.mediaType})`, {
      digest: desc.digest,
    })
  }
  const configDesc = manifest.config
  const config = await content.readJson(configDesc, ImageConfigSchema, { name: 'config' }).catch((err: unknown) => rethrow(err, ref))
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new StoreError(
      'ERR_STORE_BAD_IMAGE',
      `image ${ref}: the manifest has ${manifest.layers.length} layers but the config's rootfs.diff_ids has ${config.rootfs.diff_ids.length}`,
      { digest: configDesc.digest, field: 'config.rootfs.diff_ids' },
    )
  }
  if (want !== undefined && !matchPlatform(want, { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) })) {
    throw notFound(ref, `it is for ${formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant })}, not ${formatPlatform(want)}`)
  }
  return { ref, ...(indexDigest !== undefined ? { indexDigest } : {}), manifestDesc: desc, manifest, configDesc, config }
}
