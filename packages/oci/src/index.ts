/**
 * `@ctr/oci`: the OCI image formats and Docker's v2 image formats in TypeScript, with no I/O.
 *
 * - zod schemas and types for descriptors, manifests, indexes, image configs and the OCI image
 *   layout, with errors that name the offending field;
 * - media-type constants and helpers;
 * - digests: parse, compute, and verify while streaming;
 * - image references with Docker's normalisation (`alpine` → `docker.io/library/alpine:latest`);
 * - platforms: parse, normalise, match, and pick the right manifest from an index.
 *
 * @example
 * ```ts
 * import { parseReference, parseManifest, selectManifest, DigestVerifier, apiHost } from '@ctr/oci'
 * const ref = parseReference('alpine:3.20')           // docker.io/library/alpine:3.20
 * const url = `https://${apiHost(ref)}/v2/${ref.repository}/manifests/${ref.manifestReference}`
 * const m = parseManifest(body, contentType)
 * const desc = m.kind === 'index' ? selectManifest(m.value, 'linux/arm64') : undefined
 * await pipeline(blobStream, new DigestVerifier({ digest: layer.digest, size: layer.size }), file)
 * ```
 * @packageDocumentation
 */
export { OciError, DigestMismatchError, SizeMismatchError, type OciErrorCode, type OciIssue } from './errors.js'
export {
  MediaType,
  MANIFEST_MEDIA_TYPES,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_SIZE,
  Annotation,
  ATTESTATION_MANIFEST,
  normalizeMediaType,
  isManifest,
  isIndex,
  isConfig,
  isLayer,
  isNondistributable,
  layerCompression,
  type KnownMediaType,
  type ManifestMediaType,
  type IndexMediaType,
} from './media-types.js'
export {
  parseDigest,
  isDigest,
  splitDigest,
  digestOf,
  verifyBlob,
  digestStream,
  BlobVerifier,
  DigestVerifier,
  type Digest,
  type DigestAlgorithm,
  type BlobExpectation,
} from './digest.js'
export {
  MediaTypeSchema,
  DigestSchema,
  SizeSchema,
  PlatformSchema,
  DescriptorSchema,
  ImageManifestSchema,
  DockerManifestSchema,
  ImageIndexSchema,
  DockerManifestListSchema,
  ContainerConfigSchema,
  RootFsSchema,
  HistorySchema,
  ImageConfigSchema,
  OciLayoutSchema,
  OCI_LAYOUT_VERSION,
  checkDocument,
  parseDocument,
  parseManifest,
  parseImageConfig,
  parseOciLayout,
  parseLayoutIndex,
  manifestMediaType,
  type Platform,
  type Descriptor,
  type ManifestFields,
  type ImageManifest,
  type DockerManifest,
  type Manifest,
  type IndexFields,
  type ImageIndex,
  type DockerManifestList,
  type Index,
  type HealthConfig,
  type ContainerConfig,
  type RootFs,
  type History,
  type ImageConfig,
  type OciLayout,
  type ParsedManifest,
  type DocumentOptions,
} from './schemas.js'
export {
  Reference,
  parseReference,
  isValidReference,
  apiHost,
  DEFAULT_REGISTRY,
  DOCKER_HUB_API_HOST,
  DEFAULT_TAG,
  NAME_MAX_LENGTH,
  type ReferenceParts,
} from './reference.js'
export {
  parsePlatform,
  formatPlatform,
  normalizePlatform,
  nodePlatform,
  hostPlatform,
  matchPlatform,
  isAttestation,
  indexPlatforms,
  matchingManifests,
  selectManifest,
  PlatformNotFoundError,
  type PlatformSpec,
} from './platform.js'
