import * as z from 'zod/mini'
import { digestProblem, isDigest, type Digest } from './digest.js'
import { OciError, type OciErrorCode, type OciIssue } from './errors.js'
import { MAX_MANIFEST_SIZE, MediaType, normalizeMediaType, type IndexMediaType, type ManifestMediaType } from './media-types.js'

// The schemas are built with zod's functional API (`zod/mini`): the same parser and the same
// `.parse`/`.safeParse` on every schema, but no chainable methods, so a bundler keeps only the
// parts of zod they use: bench/pull's CLI, bundled with esbuild, is ~75 KB where classic zod
// (which brings every locale along) made it ~500 KB, ~40 ms more to load (bench/README.md,
// bench/pull). Unbundled, importing zod costs ~0.1 s either way (its core imports every
// locale), and building these schemas a few ms. They compose with classic `zod` schemas:
// `z.nullable(DigestSchema)`, `z.object({ d: DescriptorSchema })`.
//
// Schemas are strict where the specs say MUST (digest format, sizes, schemaVersion, media-type
// syntax, string annotations) and loose about fields they do not know: registries and build
// tools add their own, and the digest of a document is always taken over its raw bytes, so
// keeping unknown fields costs nothing.

/** Shows a value in an error message. */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'object') return 'an object'
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v)
  return String(v)
}

function expected(what: string) {
  return (iss: { input?: unknown }): string => (iss.input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${describe(iss.input)}`)
}

/** RFC 6838 section 4.2: `type "/" subtype`, each a restricted name of 1 to 127 characters. */
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/
/** RFC 4648 section 4 (standard alphabet, padded). */
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

const StringMap = z.record(z.string(), z.string())
const StringList = z.array(z.string())

/** A media type string (RFC 6838 syntax). */
export const MediaTypeSchema = z.string().check(
  z.regex(MEDIA_TYPE_RE, { error: (iss) => `not a valid media type (RFC 6838 "type/subtype"): ${describe(iss.input)}` }),
)

/** A digest: `sha256:<64 hex>` or `sha512:<128 hex>`. */
export const DigestSchema = z.custom<Digest>((v) => isDigest(v), {
  error: (iss) => (typeof iss.input === 'string' ? (digestProblem(iss.input) ?? 'invalid digest') : expected('a digest string')(iss)),
})

/** A byte count: a non-negative safe integer. */
export const SizeSchema = z.custom<number>((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, {
  error: expected('a non-negative integer'),
})

const UrlSchema = z.string().check(z.refine((s) => URL.canParse(s), { error: (iss) => `not a valid URL: ${describe(iss.input)}` }))

/**
 * The platform an image or a manifest is built for.
 *
 * Values follow Go's `GOOS` and `GOARCH`: `linux`, `windows`; `amd64`, `arm64`, `arm`, `386`,
 * `ppc64le`, `s390x`, `riscv64`. `variant` refines the CPU (`v7` for `arm`, `v8` for `arm64`).
 */
export interface Platform {
  /** The CPU architecture (`amd64`, `arm64`, …). */
  architecture: string
  /** The operating system (`linux`, `windows`, …). */
  os: string
  /** The OS version (Windows builds, e.g. `10.0.17763.1879`). */
  'os.version'?: string | undefined
  /** Required OS features (Windows, e.g. `win32k`). */
  'os.features'?: string[] | undefined
  /** The CPU variant (`v5`, `v6`, `v7`, `v8`). */
  variant?: string | undefined
  /** Reserved by the OCI spec; Docker has used it for CPU features such as `sse4`. */
  features?: string[] | undefined
  [key: string]: unknown
}

/** Schema of {@link Platform}. */
export const PlatformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.optional(z.string()),
  'os.features': z.optional(StringList),
  variant: z.optional(z.string()),
  features: z.optional(StringList),
})

/** A content descriptor: what a piece of content is, its digest and its size. */
export interface Descriptor {
  /** The media type of the content. */
  mediaType: string
  /** The digest of the content's bytes. */
  digest: Digest
  /** The size of the content in bytes. */
  size: number
  /** Other places to fetch the content from (non-distributable and foreign layers). */
  urls?: string[] | undefined
  /** Arbitrary metadata. */
  annotations?: Record<string, string> | undefined
  /** The content itself, base64-encoded, for small blobs. */
  data?: string | undefined
  /** The type of artifact the content is, when it is a manifest of an artifact. */
  artifactType?: string | undefined
  /** In an index: the platform of the manifest this points to. */
  platform?: Platform | undefined
  [key: string]: unknown
}

/** Schema of {@link Descriptor}. */
export const DescriptorSchema = z.looseObject({
  mediaType: MediaTypeSchema,
  digest: DigestSchema,
  size: SizeSchema,
  urls: z.optional(z.array(UrlSchema)),
  annotations: z.optional(StringMap),
  data: z.optional(z.string().check(z.regex(BASE64_RE, { error: 'not valid base64 (RFC 4648, standard alphabet, padded)' }))),
  artifactType: z.optional(MediaTypeSchema),
  platform: z.optional(PlatformSchema),
})

const SchemaVersion = z.literal(2, { error: (iss) => (iss.input === undefined ? 'missing (must be 2)' : `must be 2, got ${describe(iss.input)}`) })

function mediaTypeLiteral<T extends string>(value: T) {
  return z.literal(value, { error: (iss) => (iss.input === undefined ? `missing (must be "${value}")` : `must be "${value}", got ${describe(iss.input)}`) })
}

const manifestFields = {
  schemaVersion: SchemaVersion,
  artifactType: z.optional(MediaTypeSchema),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: z.optional(DescriptorSchema),
  annotations: z.optional(StringMap),
}

const indexFields = {
  schemaVersion: SchemaVersion,
  artifactType: z.optional(MediaTypeSchema),
  manifests: z.array(DescriptorSchema),
  subject: z.optional(DescriptorSchema),
  annotations: z.optional(StringMap),
}

/** The fields an OCI image manifest and a Docker schema 2 manifest share. */
export interface ManifestFields {
  /** Always 2. */
  schemaVersion: 2
  /** The type of artifact, when the manifest is an artifact rather than an image. */
  artifactType?: string | undefined
  /** The image configuration (or an artifact's config, often {@link MediaType.OciEmpty}). */
  config: Descriptor
  /** The layers, base first. */
  layers: Descriptor[]
  /** The manifest this one refers to (referrers API: signatures, SBOMs, …). */
  subject?: Descriptor | undefined
  /** Arbitrary metadata. */
  annotations?: Record<string, string> | undefined
  [key: string]: unknown
}

/** An OCI image manifest (`application/vnd.oci.image.manifest.v1+json`). */
export interface ImageManifest extends ManifestFields {
  /** Optional in the body; when present it is the OCI manifest media type. */
  mediaType?: typeof MediaType.OciManifest | undefined
}

/** A Docker image manifest, schema 2 (`application/vnd.docker.distribution.manifest.v2+json`). */
export interface DockerManifest extends ManifestFields {
  /** Required in the body. */
  mediaType: typeof MediaType.DockerManifest
}

/** Either kind of single-image manifest. */
export type Manifest = ImageManifest | DockerManifest

/** Schema of {@link ImageManifest}. */
export const ImageManifestSchema = z.looseObject({ ...manifestFields, mediaType: z.optional(mediaTypeLiteral(MediaType.OciManifest)) })
/** Schema of {@link DockerManifest}. */
export const DockerManifestSchema = z.looseObject({ ...manifestFields, mediaType: mediaTypeLiteral(MediaType.DockerManifest) })

/** The fields an OCI image index and a Docker manifest list share. */
export interface IndexFields {
  /** Always 2. */
  schemaVersion: 2
  /** The type of artifact, when the index is an artifact. */
  artifactType?: string | undefined
  /** The manifests, usually one per platform, with `platform` set. */
  manifests: Descriptor[]
  /** The manifest this one refers to. */
  subject?: Descriptor | undefined
  /** Arbitrary metadata. */
  annotations?: Record<string, string> | undefined
  [key: string]: unknown
}

/** An OCI image index (`application/vnd.oci.image.index.v1+json`); also an image layout's `index.json`. */
export interface ImageIndex extends IndexFields {
  /** Optional in the body; when present it is the OCI index media type. */
  mediaType?: typeof MediaType.OciIndex | undefined
}

/** A Docker manifest list (`application/vnd.docker.distribution.manifest.list.v2+json`). */
export interface DockerManifestList extends IndexFields {
  /** Required in the body. */
  mediaType: typeof MediaType.DockerManifestList
}

/** Either kind of index. */
export type Index = ImageIndex | DockerManifestList

/** Schema of {@link ImageIndex}. */
export const ImageIndexSchema = z.looseObject({ ...indexFields, mediaType: z.optional(mediaTypeLiteral(MediaType.OciIndex)) })
/** Schema of {@link DockerManifestList}. */
export const DockerManifestListSchema = z.looseObject({ ...indexFields, mediaType: mediaTypeLiteral(MediaType.DockerManifestList) })

/** A Docker health check, in an image config (durations in nanoseconds). */
export interface HealthConfig {
  /** `["NONE"]`, `["CMD", argv…]` or `["CMD-SHELL", command]`. */
  Test?: string[] | null | undefined
  Interval?: number | undefined
  Timeout?: number | undefined
  StartPeriod?: number | undefined
  StartInterval?: number | undefined
  Retries?: number | undefined
  [key: string]: unknown
}

const HealthConfigSchema = z.looseObject({
  Test: z.nullish(StringList),
  Interval: z.optional(z.number()),
  Timeout: z.optional(z.number()),
  StartPeriod: z.optional(z.number()),
  StartInterval: z.optional(z.number()),
  Retries: z.optional(z.number()),
})

/**
 * The execution parameters of an image: the defaults for a container. Docker writes `null` for
 * empty lists and maps, so those fields accept it.
 */
export interface ContainerConfig {
  /** `user`, `uid`, `user:group` or `uid:gid`. */
  User?: string | undefined
  /** Keys such as `80/tcp`; values are empty objects. */
  ExposedPorts?: Record<string, unknown> | null | undefined
  /** `NAME=value` entries. */
  Env?: string[] | null | undefined
  Entrypoint?: string[] | null | undefined
  Cmd?: string[] | null | undefined
  /** Keys are paths; values are empty objects. */
  Volumes?: Record<string, unknown> | null | undefined
  WorkingDir?: string | undefined
  Labels?: Record<string, string> | null | undefined
  /** E.g. `SIGTERM`. */
  StopSignal?: string | undefined
  /** Windows only, deprecated. */
  ArgsEscaped?: boolean | undefined
  /** Docker extension. */
  Healthcheck?: HealthConfig | null | undefined
  /** Docker extension. */
  OnBuild?: string[] | null | undefined
  /** Docker extension: the shell for the shell form of RUN, CMD and ENTRYPOINT. */
  Shell?: string[] | null | undefined
  [key: string]: unknown
}

/** Schema of {@link ContainerConfig}. */
export const ContainerConfigSchema = z.looseObject({
  User: z.optional(z.string()),
  ExposedPorts: z.nullish(z.record(z.string(), z.unknown())),
  Env: z.nullish(StringList),
  Entrypoint: z.nullish(StringList),
  Cmd: z.nullish(StringList),
  Volumes: z.nullish(z.record(z.string(), z.unknown())),
  WorkingDir: z.optional(z.string()),
  Labels: z.nullish(StringMap),
  StopSignal: z.optional(z.string()),
  ArgsEscaped: z.optional(z.boolean()),
  Healthcheck: z.nullish(HealthConfigSchema),
  OnBuild: z.nullish(StringList),
  Shell: z.nullish(StringList),
})

/** The layers of an image by their uncompressed digests (`diff_ids`), base first. */
export interface RootFs {
  /** Always `layers`. */
  type: 'layers'
  /** The digests of the uncompressed layer tars. */
  diff_ids: Digest[]
  [key: string]: unknown
}

/** Schema of {@link RootFs}. */
export const RootFsSchema = z.looseObject({
  type: z.literal('layers', { error: (iss) => (iss.input === undefined ? 'missing (must be "layers")' : `must be "layers", got ${describe(iss.input)}`) }),
  diff_ids: z.array(DigestSchema),
})

/** One step of an image's history. */
export interface History {
  /** When (RFC 3339). */
  created?: string | undefined
  author?: string | undefined
  /** The command that made the step, e.g. `/bin/sh -c #(nop) CMD ["sh"]`. */
  created_by?: string | undefined
  comment?: string | undefined
  /** True when the step made no layer. */
  empty_layer?: boolean | undefined
  [key: string]: unknown
}

/** Schema of {@link History}. */
export const HistorySchema = z.looseObject({
  created: z.optional(z.string()),
  author: z.optional(z.string()),
  created_by: z.optional(z.string()),
  comment: z.optional(z.string()),
  empty_layer: z.optional(z.boolean()),
})

/** An image configuration (OCI `application/vnd.oci.image.config.v1+json` or Docker's). */
export interface ImageConfig {
  /** When the image was created (RFC 3339). */
  created?: string | undefined
  author?: string | undefined
  architecture: string
  os: string
  'os.version'?: string | undefined
  'os.features'?: string[] | undefined
  variant?: string | undefined
  /** The defaults for a container. */
  config?: ContainerConfig | undefined
  rootfs: RootFs
  history?: History[] | undefined
  [key: string]: unknown
}

/** Schema of {@link ImageConfig}. */
export const ImageConfigSchema = z.looseObject({
  created: z.optional(z.string()),
  author: z.optional(z.string()),
  architecture: z.string(),
  os: z.string(),
  'os.version': z.optional(z.string()),
  'os.features': z.optional(StringList),
  variant: z.optional(z.string()),
  config: z.optional(ContainerConfigSchema),
  rootfs: RootFsSchema,
  history: z.optional(z.array(HistorySchema)),
})

/** The `oci-layout` file at the root of an OCI image layout directory. */
export interface OciLayout {
  /** `1.0.0`. */
  imageLayoutVersion: '1.0.0'
  [key: string]: unknown
}

/** Schema of {@link OciLayout}. */
export const OciLayoutSchema = z.looseObject({
  imageLayoutVersion: z.literal('1.0.0', {
    error: (iss) => (iss.input === undefined ? 'missing (must be "1.0.0")' : `must be "1.0.0", got ${describe(iss.input)}`),
  }),
})

/** The version written to a new image layout's `oci-layout` file. */
export const OCI_LAYOUT_VERSION = '1.0.0'

// The interfaces above are what users read; these checks keep them equal to the schemas.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Expect<T extends true> = T
type _SchemaChecks = [
  Expect<Same<z.output<typeof PlatformSchema>, Platform>>,
  Expect<Same<z.output<typeof DescriptorSchema>, Descriptor>>,
  Expect<Same<z.output<typeof ImageManifestSchema>, ImageManifest>>,
  Expect<Same<z.output<typeof DockerManifestSchema>, DockerManifest>>,
  Expect<Same<z.output<typeof ImageIndexSchema>, ImageIndex>>,
  Expect<Same<z.output<typeof DockerManifestListSchema>, DockerManifestList>>,
  Expect<Same<z.output<typeof ContainerConfigSchema>, ContainerConfig>>,
  Expect<Same<z.output<typeof RootFsSchema>, RootFs>>,
  Expect<Same<z.output<typeof HistorySchema>, History>>,
  Expect<Same<z.output<typeof ImageConfigSchema>, ImageConfig>>,
  Expect<Same<z.output<typeof OciLayoutSchema>, OciLayout>>,
]

// ---------------------------------------------------------------------------------------------
// Parsing documents with errors that name the field

function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else if (typeof key === 'string' && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) out += `.${key}`
    else out += `[${JSON.stringify(String(key))}]`
  }
  return out
}

function issueMessage(iss: z.core.$ZodIssue): string {
  if (iss.code === 'invalid_type') {
    const what = iss.expected === 'array' ? 'an array' : iss.expected === 'object' ? 'an object' : `a ${iss.expected}`
    return expected(what)(iss)
  }
  return iss.message
}

/** Options of {@link checkDocument} and {@link parseDocument}. */
export interface DocumentOptions {
  /** The document's name, the root of the field paths in messages: `manifest`, `config`, … */
  name: string
  /** The error code to throw; default `ERR_OCI_INVALID_DOCUMENT`. */
  code?: OciErrorCode
}

/**
 * Validates a value already decoded from JSON against one of the schemas. Throws an
 * {@link OciError} whose message names the first offending field (`config.rootfs.diff_ids[1]: …`)
 * and whose `issues` lists them all.
 *
 * @example
 * ```ts
 * const desc = checkDocument(DescriptorSchema, JSON.parse(text), { name: 'descriptor' })
 * ```
 */
export function checkDocument<S extends z.core.$ZodType>(schema: S, value: unknown, options: DocumentOptions): z.output<S> {
  const result = z.safeParse(schema, value, { reportInput: true })
  if (result.success) return result.data
  const issues: OciIssue[] = result.error.issues.map((iss) => ({ path: formatPath(options.name, iss.path), message: issueMessage(iss) }))
  const first = issues[0] ?? { path: options.name, message: 'invalid' }
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : ''
  throw new OciError(options.code ?? 'ERR_OCI_INVALID_DOCUMENT', `${first.path}: ${first.message}${more}`, { path: first.path, issues })
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Decodes JSON bytes (or a string) into a value, with errors that name the document. */
function decodeJson(input: Uint8Array | string, name: string, code: OciErrorCode): unknown {
  let text: string
  if (typeof input === 'string') text = input
  else {
    try {
      text = utf8.decode(input)
    } catch (err) {
      throw new OciError(code, `${name}: not valid UTF-8`, { path: name, cause: err })
    }
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new OciError(code, `${name}: not valid JSON (${(err as Error).message})`, { path: name, cause: err })
  }
}

/**
 * Decodes JSON bytes and validates them against a schema; see {@link checkDocument}.
 *
 * @example
 * ```ts
 * const layout = parseDocument(OciLayoutSchema, await readFile('oci-layout'), { name: 'oci-layout', code: 'ERR_OCI_INVALID_LAYOUT' })
 * ```
 */
export function parseDocument<S extends z.core.$ZodType>(schema: S, input: Uint8Array | string, options: DocumentOptions): z.output<S> {
  const code = options.code ?? 'ERR_OCI_INVALID_DOCUMENT'
  return checkDocument(schema, decodeJson(input, options.name, code), { ...options, code })
}

/**
 * Parses an image configuration blob (OCI or Docker). Throws {@link OciError}
 * `ERR_OCI_INVALID_CONFIG` naming the field, e.g. `config.rootfs.diff_ids[0]: …`.
 *
 * @example
 * ```ts
 * const config = parseImageConfig(configBytes)
 * console.log(config.config?.Cmd, config.rootfs.diff_ids.length)
 * ```
 */
export function parseImageConfig(input: Uint8Array | string): ImageConfig {
  return parseDocument(ImageConfigSchema, input, { name: 'config', code: 'ERR_OCI_INVALID_CONFIG' })
}

/**
 * Parses the `oci-layout` file of an image layout. Throws {@link OciError}
 * `ERR_OCI_INVALID_LAYOUT`.
 *
 * @example
 * ```ts
 * parseOciLayout('{"imageLayoutVersion":"1.0.0"}') // { imageLayoutVersion: '1.0.0' }
 * ```
 */
export function parseOciLayout(input: Uint8Array | string): OciLayout {
  return parseDocument(OciLayoutSchema, input, { name: 'oci-layout', code: 'ERR_OCI_INVALID_LAYOUT' })
}

/**
 * Parses an image layout's `index.json` (an OCI image index). Throws {@link OciError}
 * `ERR_OCI_INVALID_LAYOUT` naming the field, e.g. `index.json.manifests[0].digest: …`.
 *
 * @example
 * ```ts
 * const index = parseLayoutIndex(await readFile(join(dir, 'index.json')))
 * const tagged = index.manifests.find((m) => m.annotations?.[Annotation.RefName] === 'latest')
 * ```
 */
export function parseLayoutIndex(input: Uint8Array | string): ImageIndex {
  return parseDocument(ImageIndexSchema, input, { name: 'index.json', code: 'ERR_OCI_INVALID_LAYOUT' })
}

/** The result of {@link parseManifest}: which kind of document it is, and the document. */
export type ParsedManifest =
  | { kind: 'manifest'; mediaType: typeof MediaType.OciManifest; value: ImageManifest }
  | { kind: 'manifest'; mediaType: typeof MediaType.DockerManifest; value: DockerManifest }
  | { kind: 'index'; mediaType: typeof MediaType.OciIndex; value: ImageIndex }
  | { kind: 'index'; mediaType: typeof MediaType.DockerManifestList; value: DockerManifestList }

/** `Content-Type` values that say nothing about which manifest a body is. */
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'binary/octet-stream', 'text/plain'])

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Parses a manifest or an index in any of the four media types (OCI manifest, OCI index,
 * Docker schema 2 manifest, Docker manifest list).
 *
 * `mediaType` is the `Content-Type` the registry sent (parameters are ignored). When it is
 * missing or generic (`application/json`), the body's `mediaType` field decides, and without
 * one the shape does (`manifests` → OCI index, else OCI manifest). When both are present they
 * must agree. Docker schema 1 and unknown types throw `ERR_OCI_UNSUPPORTED_MEDIA_TYPE`;
 * invalid documents throw `ERR_OCI_INVALID_MANIFEST` naming the field
 * (`manifest.layers[2].digest: …`, `index.manifests[0].size: …`). Bodies over
 * {@link MAX_MANIFEST_SIZE} are refused.
 *
 * The digest of a manifest is the digest of `bytes` as received: compute it with
 * {@link digestOf} on the same bytes, never on a re-serialisation.
 *
 * @example
 * ```ts
 * const m = parseManifest(body, res.headers['content-type'])
 * if (m.kind === 'index') selectManifest(m.value, 'linux/arm64')
 * else console.log(m.value.layers.map((l) => l.digest))
 * ```
 */
export function parseManifest(bytes: Uint8Array | string, mediaType?: string): ParsedManifest {
  const code = 'ERR_OCI_INVALID_MANIFEST'
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength
  if (size > MAX_MANIFEST_SIZE) {
    throw new OciError(code, `manifest: ${size} bytes is over the ${MAX_MANIFEST_SIZE}-byte limit for manifests`, { path: 'manifest' })
  }
  const json = decodeJson(bytes, 'manifest', code)
  if (!isPlainObject(json)) throw new OciError(code, `manifest: expected a JSON object, got ${describe(json)}`, { path: 'manifest' })

  const header = mediaType === undefined ? '' : normalizeMediaType(mediaType)
  const body = json['mediaType']
  if (body !== undefined && typeof body !== 'string') {
    throw new OciError(code, `manifest.mediaType: expected a string, got ${describe(body)}`, { path: 'manifest.mediaType' })
  }
  let type: string
  if (!GENERIC_CONTENT_TYPES.has(header)) {
    type = header
    if (body !== undefined && normalizeMediaType(body) !== header) {
      throw new OciError(code, `manifest.mediaType: ${describe(body)} does not match the Content-Type "${header}"`, { path: 'manifest.mediaType' })
    }
  } else if (body !== undefined) {
    type = normalizeMediaType(body)
  } else if (Array.isArray(json['manifests'])) {
    type = MediaType.OciIndex
  } else if ('config' in json || 'layers' in json) {
    type = MediaType.OciManifest
  } else {
    throw new OciError(code, 'manifest: no media type in the Content-Type or the body, and neither "manifests" nor "config" to tell what it is', {
      path: 'manifest',
    })
  }

  switch (type) {
    case MediaType.OciManifest:
      return { kind: 'manifest', mediaType: type, value: checkDocument(ImageManifestSchema, json, { name: 'manifest', code }) }
    case MediaType.DockerManifest:
      return { kind: 'manifest', mediaType: type, value: checkDocument(DockerManifestSchema, json, { name: 'manifest', code }) }
    case MediaType.OciIndex:
      return { kind: 'index', mediaType: type, value: checkDocument(ImageIndexSchema, json, { name: 'index', code }) }
    case MediaType.DockerManifestList:
      return { kind: 'index', mediaType: type, value: checkDocument(DockerManifestListSchema, json, { name: 'index', code }) }
    case MediaType.DockerManifestV1:
    case MediaType.DockerManifestV1Signed:
      throw new OciError('ERR_OCI_UNSUPPORTED_MEDIA_TYPE', `Docker schema 1 manifests (${type}) are not supported; push the image again with a current client`)
    default:
      throw new OciError(
        'ERR_OCI_UNSUPPORTED_MEDIA_TYPE',
        `unsupported manifest media type "${type}" (supported: ${[MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList].join(', ')})`,
      )
  }
}

/**
 * The media type of a parsed manifest or index: its `mediaType` field, or the OCI type when the
 * body has none (it is optional in OCI documents).
 *
 * @example
 * ```ts
 * manifestMediaType({ schemaVersion: 2, manifests: [] }) // 'application/vnd.oci.image.index.v1+json'
 * ```
 */
export function manifestMediaType(m: Manifest | Index): ManifestMediaType | IndexMediaType {
  if (m.mediaType !== undefined) return m.mediaType
  return 'manifests' in m ? MediaType.OciIndex : MediaType.OciManifest
}
