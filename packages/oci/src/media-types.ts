/**
 * Media types of the OCI image spec (v1.1) and of Docker's image manifest v2, schema 2.
 *
 * @example
 * ```ts
 * if (desc.mediaType === MediaType.OciLayerZstd) useZstd()
 * ```
 */
export const MediaType = {
  /** A content descriptor on its own. */
  OciDescriptor: 'application/vnd.oci.descriptor.v1+json',
  /** The `oci-layout` file of an image layout directory. */
  OciLayoutHeader: 'application/vnd.oci.layout.header.v1+json',
  /** An OCI image manifest. */
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  /** An OCI image index (a manifest per platform, or any set of manifests). */
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  /** An OCI image configuration. */
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  /** An uncompressed tar layer. */
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  /** A gzip-compressed tar layer. */
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** A zstd-compressed tar layer. */
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  /** An uncompressed tar layer with distribution restrictions (deprecated by the spec). */
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  /** A gzip-compressed tar layer with distribution restrictions (deprecated by the spec). */
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  /** A zstd-compressed tar layer with distribution restrictions (deprecated by the spec). */
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  /** The empty JSON object `{}` (2 bytes), used as the config of artifacts. */
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  /** A Docker image manifest, schema 2. */
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  /** A Docker manifest list (Docker's image index). */
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** A Docker image configuration. */
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  /** A Docker uncompressed tar layer. */
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  /** A Docker gzip-compressed tar layer: the usual Docker layer. */
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** A Docker zstd-compressed tar layer. */
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  /** A Docker foreign layer (fetched from the descriptor's `urls`, e.g. Windows base layers). */
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  /** A Docker foreign layer, uncompressed. */
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  /** A Docker plugin configuration. */
  DockerPluginConfig: 'application/vnd.docker.plugin.v1+json',
  /** Docker's manifest schema 1 (deprecated, not supported by this package). */
  DockerManifestV1: 'application/vnd.docker.distribution.manifest.v1+json',
  /** Docker's signed manifest schema 1 (deprecated, not supported by this package). */
  DockerManifestV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  /** An in-toto attestation (the layers of BuildKit's attestation manifests). */
  InToto: 'application/vnd.in-toto+json',
} as const

/** Any of the media types in {@link MediaType}. */
export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType]

/** The media types of a single-image manifest: OCI and Docker schema 2. */
export type ManifestMediaType = typeof MediaType.OciManifest | typeof MediaType.DockerManifest
/** The media types of an index: OCI image index and Docker manifest list. */
export type IndexMediaType = typeof MediaType.OciIndex | typeof MediaType.DockerManifestList

/** The four manifest media types a client should accept, OCI first. */
export const MANIFEST_MEDIA_TYPES: readonly (ManifestMediaType | IndexMediaType)[] = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
]

/**
 * The value of an `Accept` header for fetching a manifest in any of the four supported media
 * types.
 */
export const MANIFEST_ACCEPT: string = MANIFEST_MEDIA_TYPES.join(', ')

/** Annotation keys with a meaning to this package and to the tools around it. */
export const Annotation = {
  /** The name of a reference (usually a tag) of a manifest in an image layout's `index.json`. */
  RefName: 'org.opencontainers.image.ref.name',
  /** When the image was created (RFC 3339). */
  Created: 'org.opencontainers.image.created',
  /** The image's title. */
  Title: 'org.opencontainers.image.title',
  /** The image's version. */
  Version: 'org.opencontainers.image.version',
  /** The image's source repository URL. */
  Source: 'org.opencontainers.image.source',
  /** The source revision the image was built from. */
  Revision: 'org.opencontainers.image.revision',
  /** The reference of the image this one was built on. */
  BaseName: 'org.opencontainers.image.base.name',
  /** The digest of the image this one was built on. */
  BaseDigest: 'org.opencontainers.image.base.digest',
  /** BuildKit: the type of an index entry; `attestation-manifest` marks provenance/SBOM. */
  DockerReferenceType: 'vnd.docker.reference.type',
  /** BuildKit: the digest of the image manifest an attestation manifest describes. */
  DockerReferenceDigest: 'vnd.docker.reference.digest',
} as const

/** The value of {@link Annotation.DockerReferenceType} on BuildKit's attestation manifests. */
export const ATTESTATION_MANIFEST = 'attestation-manifest'

/** The largest manifest accepted by {@link parseManifest}: 4 MiB, as registries enforce. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024

/**
 * Strips parameters (`; charset=utf-8`) and whitespace and lowercases a media type, as found in
 * a `Content-Type` header.
 *
 * @example
 * ```ts
 * normalizeMediaType('Application/JSON; charset=utf-8') // 'application/json'
 * ```
 */
export function normalizeMediaType(mediaType: string): string {
  const semi = mediaType.indexOf(';')
  return (semi === -1 ? mediaType : mediaType.slice(0, semi)).trim().toLowerCase()
}

/**
 * Whether a media type is a single-image manifest (OCI or Docker schema 2).
 *
 * @example
 * ```ts
 * isManifest('application/vnd.docker.distribution.manifest.v2+json') // true
 * ```
 */
export function isManifest(mediaType: string | undefined): mediaType is ManifestMediaType {
  if (mediaType === undefined) return false
  const m = normalizeMediaType(mediaType)
  return m === MediaType.OciManifest || m === MediaType.DockerManifest
}

/**
 * Whether a media type is an index (OCI image index or Docker manifest list).
 *
 * @example
 * ```ts
 * isIndex('application/vnd.oci.image.index.v1+json') // true
 * ```
 */
export function isIndex(mediaType: string | undefined): mediaType is IndexMediaType {
  if (mediaType === undefined) return false
  const m = normalizeMediaType(mediaType)
  return m === MediaType.OciIndex || m === MediaType.DockerManifestList
}

/**
 * Whether a media type is an image configuration (OCI or Docker).
 *
 * @example
 * ```ts
 * isConfig(manifest.config.mediaType) // true for a runnable image, false for most artifacts
 * ```
 */
export function isConfig(mediaType: string | undefined): boolean {
  if (mediaType === undefined) return false
  const m = normalizeMediaType(mediaType)
  return m === MediaType.OciConfig || m === MediaType.DockerConfig
}

const LAYER_COMPRESSION: ReadonlyMap<string, 'gzip' | 'zstd' | 'none'> = new Map([
  [MediaType.OciLayer, 'none'],
  [MediaType.OciLayerGzip, 'gzip'],
  [MediaType.OciLayerZstd, 'zstd'],
  [MediaType.OciLayerNondistributable, 'none'],
  [MediaType.OciLayerNondistributableGzip, 'gzip'],
  [MediaType.OciLayerNondistributableZstd, 'zstd'],
  [MediaType.DockerLayer, 'none'],
  [MediaType.DockerLayerGzip, 'gzip'],
  [MediaType.DockerLayerZstd, 'zstd'],
  [MediaType.DockerForeignLayer, 'none'],
  [MediaType.DockerForeignLayerGzip, 'gzip'],
])

/**
 * The compression of an image layer's tar, from its media type; `undefined` when the media
 * type is not a known layer type.
 *
 * @example
 * ```ts
 * layerCompression('application/vnd.oci.image.layer.v1.tar+zstd')          // 'zstd'
 * layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip')    // 'gzip'
 * layerCompression('application/vnd.oci.image.layer.v1.tar')               // 'none'
 * layerCompression('application/vnd.oci.image.config.v1+json')             // undefined
 * ```
 */
export function layerCompression(mediaType: string): 'gzip' | 'zstd' | 'none' | undefined {
  return LAYER_COMPRESSION.get(normalizeMediaType(mediaType))
}

/**
 * Whether a media type is a known image layer (tar, tar+gzip, tar+zstd; OCI or Docker; including
 * non-distributable and foreign layers).
 *
 * @example
 * ```ts
 * isLayer('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip') // true
 * ```
 */
export function isLayer(mediaType: string): boolean {
  return LAYER_COMPRESSION.has(normalizeMediaType(mediaType))
}

/**
 * Whether a layer is non-distributable (OCI) or foreign (Docker): registries may refuse to hold
 * it and the descriptor's `urls` say where to fetch it from.
 *
 * @example
 * ```ts
 * isNondistributable('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip') // true
 * ```
 */
export function isNondistributable(mediaType: string): boolean {
  const m = normalizeMediaType(mediaType)
  return m.startsWith('application/vnd.oci.image.layer.nondistributable.') || m.startsWith('application/vnd.docker.image.rootfs.foreign.')
}
