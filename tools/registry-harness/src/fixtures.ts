/**
 * Fixture images built without Docker, as an OCI image layout: busybox from Debian's
 * `busybox-static` (gzip, zstd, uncompressed; OCI and Docker schema 2), a Docker manifest
 * list, an OCI index with an attestation entry, a two-layer image with whiteouts and links, an
 * image with a foreign layer, a repository with many tags; and large random images.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Annotation, ATTESTATION_MANIFEST, MediaType, type Digest, type Platform } from '@ctr/oci'
import { startFaultServer, type FaultServer } from './fault.js'
import { blobPath, LayoutWriter, readLayoutIndex, type Desc } from './layout.js'
import { Uploader, type ImageNode, type PushTarget } from './push.js'
import { ensureTools, makeTempDir, run, Tools } from './system.js'
import { fileHeader, FIXED_MTIME, TAR_END, tarBuffer, writeLayer, type Compression, type TarEntry } from './tarball.js'

/** The names of the fixture images of {@link buildFixtures}. */
export type FixtureName =
  | 'busybox'
  | 'busyboxZstd'
  | 'busyboxUncompressed'
  | 'dockerImage'
  | 'dockerList'
  | 'multi'
  | 'layers'
  | 'foreign'
  | 'manyTags'

/** Every fixture name, in push order (children before the indexes that list them). */
export const FIXTURE_NAMES: readonly FixtureName[] = [
  'busybox',
  'busyboxZstd',
  'busyboxUncompressed',
  'dockerImage',
  'dockerList',
  'multi',
  'layers',
  'foreign',
  'manyTags',
]

/** An image written into an OCI layout, with where it goes in a registry. */
export interface BuiltImage extends ImageNode {
  /** The fixture's name (`busybox`, `multi`, …) or the name given to {@link makeImage}. */
  name: string
  /** The repository it is pushed to (`library/busybox`). */
  repository: string
  /** Its main tag (`latest`). */
  tag: string
  /** Every tag it is pushed under (the main one first). */
  tags: string[]
  /** The OCI layout directory holding it. */
  layoutDir: string
  /** Its `org.opencontainers.image.ref.name` in the layout: `repository:tag` (skopeo: `oci:DIR:REF`). */
  refName: string
}

/** What {@link buildFixtures} made. */
export interface Fixtures {
  /** The OCI layout directory with every fixture. */
  dir: string
  /** The images by name. */
  images: Record<FixtureName, BuiltImage>
  /** The platform of this host as the fixtures name it (`linux/amd64` here). */
  hostPlatform: Platform
  /** The foreign layer (not pushed; fetched from its `urls`). */
  foreignLayer: Desc
  /** The server that serves the foreign layer, when {@link buildFixtures} started one. */
  foreignServer?: FaultServer
  /** The path of a blob in the layout. */
  blobPath(digest: string): string
  /** Stops the foreign-layer server, if any. */
  close(): Promise<void>
}

/** Options of {@link buildFixtures}. */
export interface BuildFixturesOptions {
  /**
   * Base URL of the server the foreign layer's `urls` point to (`${base}/blobs/${digest}`).
   * Default: a server started here that serves the layout's blobs ({@link Fixtures.foreignServer}).
   */
  foreignBaseUrl?: string
  /** How many tags `test/tags` gets (default 120). */
  manyTags?: number
}

const CREATED = FIXED_MTIME.toISOString().replace('.000Z', 'Z')
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * This host's platform in OCI terms (`amd64`, `arm64` + `v8`, `arm` + `v7`, …).
 *
 * @example
 * ```ts
 * hostOciPlatform() // { os: 'linux', architecture: 'amd64' }
 * ```
 */
export function hostOciPlatform(): Platform {
  switch (process.arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' }
    case 'arm64':
      return { os: 'linux', architecture: 'arm64', variant: 'v8' }
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' }
    case 'ia32':
      return { os: 'linux', architecture: '386' }
    default:
      return { os: 'linux', architecture: process.arch }
  }
}

const INDEX_PLATFORMS: readonly Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
]

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '')
}

function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/')
}

function imageConfig(platform: Platform, diffIds: readonly string[], createdBy: string): Record<string, unknown> {
  return {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    config: { Env: [PATH_ENV], Cmd: ['/bin/sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created: CREATED, created_by: createdBy })),
  }
}

function parents(p: string): string[] {
  const parts = p.split('/').filter(Boolean)
  const out: string[] = []
  for (let i = 1; i < parts.length; i++) out.push(`${parts.slice(0, i).join('/')}/`)
  return out
}

/**
 * The entries of the busybox root filesystem: base directories, `bin/busybox` (from
 * `/bin/busybox`), one relative symlink per applet at the path `busybox --list-full` gives,
 * `etc/passwd` and `etc/group`.
 * @internal
 */
export async function busyboxEntries(): Promise<TarEntry[]> {
  await ensureTools(['busybox'])
  const binary = await fs.readFile(Tools.busybox)
  const { stdout } = await run(Tools.busybox, ['--list-full'])
  const applets = stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'bin/busybox')
  const dirs = new Set(['bin/', 'dev/', 'etc/', 'home/', 'proc/', 'root/', 'run/', 'sbin/', 'sys/', 'tmp/', 'usr/', 'usr/bin/', 'usr/sbin/', 'var/'])
  for (const a of applets) for (const d of parents(a)) dirs.add(d)
  const entries: TarEntry[] = [...dirs].sort().map((d) => ({
    type: 'dir' as const,
    path: d,
    mode: d === 'tmp/' ? 0o1777 : d === 'root/' ? 0o700 : 0o755,
  }))
  entries.push({ type: 'file', path: 'bin/busybox', data: binary, mode: 0o755 })
  for (const a of applets.sort()) {
    const rel = path.posix.relative(path.posix.dirname(a), 'bin/busybox')
    entries.push({ type: 'symlink', path: a, target: rel })
  }
  entries.push(
    { type: 'file', path: 'etc/group', data: 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' },
    { type: 'file', path: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
  )
  return entries
}

/** Builds layers, configs and manifests into a layout. */
class Builder {
  constructor(readonly w: LayoutWriter) {}

  async layer(entries: readonly TarEntry[], compression: Compression, mediaType: string): Promise<Desc & { diffId: Digest }> {
    const tmp = this.w.tempFile(`layer-${createHash('sha256').update(mediaType + Math.random()).digest('hex').slice(0, 12)}`)
    const info = await writeLayer(tarBuffer(entries), compression, tmp)
    const desc = await this.w.adoptFile(tmp, mediaType, info.digest, info.size)
    return { ...desc, diffId: info.diffId }
  }

  async manifest(
    kind: 'oci' | 'docker',
    platform: Platform,
    layers: ReadonlyArray<Desc & { diffId: Digest }>,
    createdBy: string,
    configOverride?: Record<string, unknown>,
  ): Promise<ImageNode> {
    const configDoc = configOverride ?? imageConfig(platform, layers.map((l) => l.diffId), createdBy)
    const config = await this.w.putJson(kind === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, configDoc)
    const layerDescs: Desc[] = layers.map((l) => ({
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      ...(l.urls !== undefined ? { urls: l.urls } : {}),
      ...(l.annotations !== undefined ? { annotations: l.annotations } : {}),
    }))
    const mediaType = kind === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest
    const doc = { schemaVersion: 2, mediaType, config, layers: layerDescs }
    const desc = await this.w.putJson(mediaType, doc)
    return { ...desc, platform, config, layers: layerDescs }
  }

  async index(kind: 'oci' | 'docker', children: ImageNode[]): Promise<ImageNode> {
    const mediaType = kind === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList
    const manifests = children.map((c) => ({
      mediaType: c.mediaType,
      digest: c.digest,
      size: c.size,
      ...(c.platform !== undefined ? { platform: c.platform } : {}),
      ...(c.annotations !== undefined ? { annotations: c.annotations } : {}),
    }))
    const desc = await this.w.putJson(mediaType, { schemaVersion: 2, mediaType, manifests })
    return { ...desc, manifests: children }
  }
}

function image(node: ImageNode, name: string, repository: string, tags: string[], layoutDir: string): BuiltImage {
  const tag = tags[0] ?? 'latest'
  return { ...node, name, repository, tag, tags, layoutDir, refName: `${repository}:${tag}` }
}

/**
 * Builds every fixture image into the OCI layout `dir` (created; rebuilt each call, the
 * content is deterministic for a given `/bin/busybox` and Node.js). Nothing needs Docker:
 * layers are tars written with node-tar's headers and compressed with zlib or the zstd CLI.
 *
 * | name | repository:tag | what |
 * | --- | --- | --- |
 * | `busybox` | `library/busybox:latest` | OCI manifest, one gzip layer (busybox + applet symlinks + /etc/passwd) |
 * | `busyboxZstd` | `library/busybox:zstd` | same files, `tar+zstd` layer |
 * | `busyboxUncompressed` | `library/busybox:uncompressed` | same files, plain `tar` layer |
 * | `dockerImage` | `library/busybox:docker` | Docker schema 2 manifest, Docker gzip layer (the same blob as `busybox`) |
 * | `dockerList` | `library/busybox:list` | Docker manifest list: amd64, arm64/v8, arm/v7 (the host's entry is `dockerImage`; the others carry a tiny layer) |
 * | `multi` | `library/busybox:multi` | OCI index: amd64, arm64/v8, arm/v7 and an attestation manifest (`unknown/unknown`, `vnd.docker.reference.type: attestation-manifest`) |
 * | `layers` | `test/layers:latest` | two gzip layers; the second has a whiteout, an opaque directory, a hardlink and absolute symlinks |
 * | `foreign` | `test/foreign:latest` | Docker schema 2 with the busybox layer and a foreign layer whose `urls` point at {@link Fixtures.foreignServer} (not pushed) |
 * | `manyTags` | `test/tags:t000` … `t119` | one small OCI image under 120 tags |
 *
 * @example
 * ```ts
 * const fixtures = await buildFixtures('/tmp/fixtures')
 * fixtures.images.multi.digest       // sha256:… of the index
 * fixtures.images.multi.manifests    // the entries, with platform and annotations
 * ```
 */
export async function buildFixtures(dir: string, options: BuildFixturesOptions = {}): Promise<Fixtures> {
  await ensureTools(['busybox', 'zstd'])
  await fs.rm(dir, { recursive: true, force: true })
  const w = await new LayoutWriter(dir).init()
  const b = new Builder(w)
  let foreignServer: FaultServer | undefined
  let foreignBase = options.foreignBaseUrl
  if (foreignBase === undefined) {
    foreignServer = await startFaultServer({ layout: dir })
    foreignBase = foreignServer.url
  }
  const host = hostOciPlatform()
  const images: Partial<Record<FixtureName, BuiltImage>> = {}
  const add = (name: FixtureName, node: ImageNode, repository: string, tags: string[]): void => {
    const img = image(node, name, repository, tags, dir)
    images[name] = img
    for (const t of tags) w.addRef(node, `${repository}:${t}`)
  }

  // busybox, three compressions.
  const bb = await busyboxEntries()
  const bbGzip = await b.layer(bb, 'gzip', MediaType.OciLayerGzip)
  const bbZstd = await b.layer(bb, 'zstd', MediaType.OciLayerZstd)
  const bbTar = await b.layer(bb, 'none', MediaType.OciLayer)
  const busybox = await b.manifest('oci', host, [bbGzip], 'ctr registry-harness: busybox')
  add('busybox', busybox, 'library/busybox', ['latest'])
  add('busyboxZstd', await b.manifest('oci', host, [bbZstd], 'ctr registry-harness: busybox'), 'library/busybox', ['zstd'])
  add('busyboxUncompressed', await b.manifest('oci', host, [bbTar], 'ctr registry-harness: busybox'), 'library/busybox', ['uncompressed'])

  // Docker schema 2: the same gzip blob under Docker's media type.
  const dockerLayer = { ...bbGzip, mediaType: MediaType.DockerLayerGzip }
  const dockerImage = await b.manifest('docker', host, [dockerLayer], 'ctr registry-harness: busybox (docker)')
  add('dockerImage', dockerImage, 'library/busybox', ['docker'])

  const tinyFor = async (kind: 'oci' | 'docker', p: Platform): Promise<ImageNode> => {
    const layer = await b.layer(
      [
        { type: 'dir', path: 'etc/' },
        { type: 'file', path: 'etc/platform', data: `${platformString(p)}\n` },
      ],
      'gzip',
      kind === 'oci' ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip,
    )
    return b.manifest(kind, p, [layer], `ctr registry-harness: ${platformString(p)} placeholder`)
  }
  const platforms = INDEX_PLATFORMS.some((p) => samePlatform(p, host)) ? INDEX_PLATFORMS : [...INDEX_PLATFORMS, host]

  // Docker manifest list.
  const listChildren: ImageNode[] = []
  for (const p of platforms) listChildren.push(samePlatform(p, host) ? { ...dockerImage, platform: p } : await tinyFor('docker', p))
  add('dockerList', await b.index('docker', listChildren), 'library/busybox', ['list'])

  // OCI index with an attestation manifest (BuildKit's layout).
  const multiChildren: ImageNode[] = []
  for (const p of platforms) multiChildren.push(samePlatform(p, host) ? { ...busybox, platform: p } : await tinyFor('oci', p))
  const statement = JSON.stringify({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://spdx.dev/Document',
    subject: [{ name: 'pkg:docker/library/busybox@multi', digest: { sha256: busybox.digest.slice('sha256:'.length) } }],
    predicate: { spdxVersion: 'SPDX-2.3', name: 'busybox', packages: [{ name: 'busybox-static' }] },
  })
  const inToto = await w.putBytes(MediaType.InToto, statement)
  const inTotoLayer = {
    ...inToto,
    annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' },
    diffId: inToto.digest,
  }
  const unknown: Platform = { os: 'unknown', architecture: 'unknown' }
  const attestation = await b.manifest('oci', unknown, [inTotoLayer], 'attestation', {
    architecture: 'unknown',
    os: 'unknown',
    config: {},
    rootfs: { type: 'layers', diff_ids: [inToto.digest] },
  })
  multiChildren.push({
    ...attestation,
    platform: unknown,
    annotations: { [Annotation.DockerReferenceDigest]: busybox.digest, [Annotation.DockerReferenceType]: ATTESTATION_MANIFEST },
  })
  add('multi', await b.index('oci', multiChildren), 'library/busybox', ['multi'])

  // Two layers: whiteout, opaque directory, hardlink, absolute symlinks.
  const lowerEntries: TarEntry[] = [
      ...bb,
      { type: 'file', path: 'etc/motd', data: 'lower layer\n' },
      { type: 'dir', path: 'gone/' },
      { type: 'file', path: 'gone/x', data: 'removed by a whiteout of its directory\n' },
      { type: 'dir', path: 'opq/' },
      { type: 'file', path: 'opq/a', data: 'hidden by the opaque marker\n' },
      { type: 'dir', path: 'opq/sub/' },
      { type: 'file', path: 'opq/sub/b', data: 'hidden too\n' },
      { type: 'dir', path: 'keep/' },
      { type: 'file', path: 'keep/file', data: 'stays\n' },
  ]
  const lower = await b.layer(
    lowerEntries.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0)),
    'gzip',
    MediaType.OciLayerGzip,
  )
  const upper = await b.layer(
    [
      { type: 'file', path: '.wh.gone', data: '' },
      { type: 'dir', path: 'etc/' },
      { type: 'file', path: 'etc/.wh.motd', data: '' },
      { type: 'dir', path: 'links/' },
      { type: 'file', path: 'links/target', data: 'hardlink target\n' },
      { type: 'hardlink', path: 'links/hard', target: 'links/target' },
      { type: 'symlink', path: 'links/abs', target: '/links/target' },
      { type: 'symlink', path: 'links/busybox', target: '/bin/busybox' },
      { type: 'dir', path: 'opq/' },
      { type: 'file', path: 'opq/.wh..wh..opq', data: '' },
      { type: 'file', path: 'opq/new', data: 'added above the opaque marker\n' },
    ],
    'gzip',
    MediaType.OciLayerGzip,
  )
  add('layers', await b.manifest('oci', host, [lower, upper], 'ctr registry-harness: layers'), 'test/layers', ['latest'])

  // A foreign layer: in the layout (so a server can serve it) but never pushed.
  const foreignTmp = w.tempFile('foreign')
  const foreignInfo = await writeLayer(
    tarBuffer([
      { type: 'dir', path: 'foreign/' },
      { type: 'file', path: 'foreign/hello.txt', data: 'fetched from the layer URL, not from the registry\n' },
    ]),
    'gzip',
    foreignTmp,
  )
  await w.adoptFile(foreignTmp, MediaType.DockerForeignLayerGzip, foreignInfo.digest, foreignInfo.size)
  const foreignLayer: Desc & { diffId: Digest } = {
    mediaType: MediaType.DockerForeignLayerGzip,
    digest: foreignInfo.digest,
    size: foreignInfo.size,
    urls: [`${foreignBase}/blobs/${foreignInfo.digest}`],
    diffId: foreignInfo.diffId,
  }
  add('foreign', await b.manifest('docker', host, [dockerLayer, foreignLayer], 'ctr registry-harness: foreign'), 'test/foreign', ['latest'])

  // Many tags.
  const count = options.manyTags ?? 120
  const tagged = await b.manifest(
    'oci',
    host,
    [await b.layer([{ type: 'file', path: 'tags.txt', data: `${count} tags\n` }], 'gzip', MediaType.OciLayerGzip)],
    'ctr registry-harness: many tags',
  )
  const width = String(count - 1).length < 3 ? 3 : String(count - 1).length
  add('manyTags', tagged, 'test/tags', Array.from({ length: count }, (_, i) => `t${String(i).padStart(width, '0')}`))

  await w.save()
  const { diffId: _d, ...foreignDesc } = foreignLayer
  return {
    dir,
    images: images as Record<FixtureName, BuiltImage>,
    hostPlatform: host,
    foreignLayer: foreignDesc,
    ...(foreignServer !== undefined ? { foreignServer } : {}),
    blobPath: (digest) => blobPath(dir, digest),
    close: async () => {
      await foreignServer?.stop()
    },
  }
}

/** An image of {@link pushFixtures}, with its references in the registry. */
export interface PushedImage extends BuiltImage {
  /** `HOST/REPOSITORY:TAG`. */
  reference: string
  /** `HOST/REPOSITORY@DIGEST`. */
  digestReference: string
}

/** What {@link pushFixtures} pushed. */
export interface PushedFixtures {
  /** The registry's `host:port`. */
  host: string
  /** The fixtures that were pushed. */
  fixtures: Fixtures
  /** The pushed images by name. */
  images: Record<FixtureName, PushedImage>
}

let defaultFixtures: Promise<Fixtures> | undefined

/**
 * The fixtures of this process, built once into a temporary directory (removed at exit).
 *
 * @example
 * ```ts
 * const fixtures = await sharedFixtures()
 * ```
 */
export function sharedFixtures(): Promise<Fixtures> {
  defaultFixtures ??= buildFixtures(path.join(makeTempDir('fixtures-'), 'oci'))
  defaultFixtures.catch(() => (defaultFixtures = undefined))
  return defaultFixtures
}

/**
 * Pushes the fixtures (by default {@link sharedFixtures}) to a registry with the harness's
 * uploader, so the digests in the registry are exactly the built ones; authenticates with the
 * registry's `credentials` (Basic or through its token issuer) and trusts its `caPem`.
 *
 * @example
 * ```ts
 * const registry = await startRegistry()
 * const { images } = await pushFixtures(registry)
 * images.multi.reference  // '127.0.0.1:PORT/library/busybox:multi'
 * ```
 */
export async function pushFixtures(
  registry: PushTarget & { host: string },
  fixtures?: Fixtures,
  names: readonly FixtureName[] = FIXTURE_NAMES,
): Promise<PushedFixtures> {
  const fx = fixtures ?? (await sharedFixtures())
  const up = new Uploader(registry)
  const pushed: Partial<Record<FixtureName, PushedImage>> = {}
  try {
    for (const name of FIXTURE_NAMES) {
      if (!names.includes(name)) continue
      const img = fx.images[name]
      await up.pushNode(img.repository, img, img.layoutDir, img.tags)
      pushed[name] = {
        ...img,
        reference: `${registry.host}/${img.repository}:${img.tag}`,
        digestReference: `${registry.host}/${img.repository}@${img.digest}`,
      }
    }
  } finally {
    up.close()
  }
  return { host: registry.host, fixtures: fx, images: pushed as Record<FixtureName, PushedImage> }
}

/**
 * Pushes one image (from {@link makeImage} or a fixture) to a registry under its tags, or
 * under `repository`/`tags` given here.
 *
 * @example
 * ```ts
 * const ref = await pushImage(registry, bench, { repository: 'bench/big' })
 * ```
 */
export async function pushImage(
  registry: PushTarget & { host: string },
  img: BuiltImage,
  options: { repository?: string; tags?: string[] } = {},
): Promise<PushedImage> {
  const repository = options.repository ?? img.repository
  const tags = options.tags ?? img.tags
  const up = new Uploader(registry)
  try {
    await up.pushNode(repository, img, img.layoutDir, tags)
  } finally {
    up.close()
  }
  const tag = tags[0] ?? img.tag
  return {
    ...img,
    repository,
    tag,
    tags,
    reference: `${registry.host}/${repository}:${tag}`,
    digestReference: `${registry.host}/${repository}@${img.digest}`,
  }
}

// ---------------------------------------------------------------------------------------------
// Large images of random bytes.

/** Options of {@link makeImage}. */
export interface MakeImageOptions {
  /** The size of each layer's content (one file of random bytes per layer). */
  layers: readonly number[]
  /** The OCI layout directory (default: a temporary one, removed at exit). Reused when it already holds the same image. */
  dir?: string
  /** Seed of the deterministic random bytes (default `ctr`). */
  seed?: string
  /** Layer compression (default `gzip`, written with stored deflate blocks: random bytes do not compress, and this is 10× faster than level 1). */
  compression?: Compression
  /** Repository to push to (default `bench/random`). */
  repository?: string
  /** Tag (default `latest`). */
  tag?: string
}

const SPEC_ANNOTATION = 'dev.ctr.registry-harness.spec'

/**
 * A stream of `size` deterministic pseudo-random bytes: the AES-256-CTR keystream of a key
 * derived from `seed` (fast, and incompressible).
 *
 * @example
 * ```ts
 * await pipeline(randomBytesStream(1 << 20, 'seed'), createWriteStream('/tmp/r'))
 * ```
 */
export function randomBytesStream(size: number, seed: string): Readable {
  const key = createHash('sha256').update(`key:${seed}`).digest()
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-256-ctr', key, iv)
  const CHUNK = 1 << 20
  const zeros = Buffer.alloc(CHUNK)
  let left = size
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (left <= 0) {
        this.push(null)
        return
      }
      const n = Math.min(CHUNK, left)
      left -= n
      this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)))
    },
  })
}

function randomLayerTar(index: number, size: number, seed: string): Readable {
  const name = `data/layer-${index}.bin`
  return Readable.from(
    (async function* () {
      yield tarBuffer([{ type: 'dir', path: 'data/' }]).subarray(0, 512)
      yield fileHeader(name, size)
      for await (const chunk of randomBytesStream(size, `${seed}:${index}`)) yield chunk as Buffer
      const rest = size % 512
      if (rest !== 0) yield Buffer.alloc(512 - rest)
      yield TAR_END
    })(),
    { objectMode: false },
  )
}

/**
 * Makes an image of incompressible random layers, streamed to disk (memory stays flat for
 * any size): layer `i` is a tar holding `data/layer-i.bin` of `layers[i]` pseudo-random bytes
 * (deterministic for `seed`). When `dir` already holds the same image it is reused, so a
 * 1 GiB bench image is built once.
 *
 * @example
 * ```ts
 * const bench = await makeImage({ layers: [40 << 20, 40 << 20, 20 << 20], dir: '/var/tmp/bench-100m' })
 * const big = await makeImage({ layers: [1 << 30], dir: '/var/tmp/bench-1g' })
 * await pushImage(registry, bench)
 * ```
 */
export async function makeImage(options: MakeImageOptions): Promise<BuiltImage> {
  const dir = options.dir ?? path.join(makeTempDir('image-'), 'oci')
  const compression = options.compression ?? 'gzip'
  const seed = options.seed ?? 'ctr'
  const repository = options.repository ?? 'bench/random'
  const tag = options.tag ?? 'latest'
  const spec = JSON.stringify({ v: 2, layers: options.layers, seed, compression, node: process.versions.zlib })
  const cached = await loadCached(dir, spec, repository, tag)
  if (cached !== undefined) return cached
  await fs.rm(dir, { recursive: true, force: true })
  const w = await new LayoutWriter(dir).init()
  const b = new Builder(w)
  const mediaType = compression === 'gzip' ? MediaType.OciLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer
  const layers: Array<Desc & { diffId: Digest }> = []
  for (const [i, size] of options.layers.entries()) {
    const tmp = w.tempFile(`random-${i}`)
    const info = await writeLayer(randomLayerTar(i, size, seed), compression, tmp, compression === 'gzip' ? 0 : undefined)
    const desc = await w.adoptFile(tmp, mediaType, info.digest, info.size)
    layers.push({ ...desc, diffId: info.diffId })
  }
  const node = await b.manifest('oci', hostOciPlatform(), layers, `ctr registry-harness: random ${options.layers.join('+')} bytes`)
  w.addRef(node, `${repository}:${tag}`)
  await w.save({ [SPEC_ANNOTATION]: spec })
  return image(node, 'random', repository, [tag], dir)
}

async function loadCached(dir: string, spec: string, repository: string, tag: string): Promise<BuiltImage | undefined> {
  if (!existsSync(path.join(dir, 'index.json'))) return undefined
  try {
    const index = await readLayoutIndex(dir)
    if (index.annotations?.[SPEC_ANNOTATION] !== spec) return undefined
    const entry = index.manifests[0]
    if (entry === undefined) return undefined
    const manifest = JSON.parse(await fs.readFile(blobPath(dir, entry.digest), 'utf8')) as { config: Desc; layers: Desc[] }
    for (const d of [manifest.config, ...manifest.layers]) {
      if ((await fs.stat(blobPath(dir, d.digest))).size !== d.size) return undefined
    }
    const node: ImageNode = {
      mediaType: entry.mediaType,
      digest: entry.digest,
      size: entry.size,
      platform: hostOciPlatform(),
      config: manifest.config,
      layers: manifest.layers,
    }
    return image(node, 'random', repository, [tag], dir)
  } catch {
    return undefined
  }
}
