/**
 * `docker inspect`- and `docker images`-like summaries of stored images.
 */
import type { Descriptor, Digest, History } from '@ctr/oci'
import type { ContentStore } from '../content/store.js'
import type { ImageIndex } from './index-file.js'
import { resolveImage, type ResolvedImage } from './resolve.js'

/** What {@link inspectImage} returns. */
export interface ImageInspect {
  /** The normalised reference. */
  ref: string
  /** The digest the reference names: the index's when it names one, else the manifest's. */
  digest: Digest
  /** The platform manifest's digest. */
  manifestDigest: Digest
  /** The image id: the config's digest. */
  id: Digest
  /** The config's `created`, if any (RFC 3339). */
  created: string | undefined
  architecture: string
  os: string
  variant: string | undefined
  /** The sum of the layer blobs' sizes (compressed, as stored and transferred). */
  size: number
  /** The layer descriptors, base first. */
  layers: Descriptor[]
  /** The uncompressed layer digests (`rootfs.diff_ids`), base first. */
  diffIds: Digest[]
  entrypoint: string[] | undefined
  cmd: string[] | undefined
  env: string[]
  workingDir: string | undefined
  user: string | undefined
  /** Port keys such as `80/tcp`. */
  exposedPorts: string[]
  /** Volume paths. */
  volumes: string[]
  labels: Record<string, string>
  stopSignal: string | undefined
  author: string | undefined
  history: History[]
}

/**
 * Summarises a resolved image as `docker inspect` would: the execution defaults
 * (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal), the
 * platform, the layers and history. No I/O.
 *
 * @example
 * ```ts
 * const info = inspectImage(await resolveImage(content, index, 'busybox'))
 * info.cmd   // ['/bin/sh']
 * info.env   // ['PATH=/usr/local/sbin:…']
 * info.id    // 'sha256:…' (the config digest)
 * ```
 */
export function inspectImage(resolved: ResolvedImage): ImageInspect {
  const { config, manifest } = resolved
  const c = config.config ?? {}
  return {
    ref: resolved.ref,
    digest: resolved.indexDigest ?? resolved.manifestDesc.digest,
    manifestDigest: resolved.manifestDesc.digest,
    id: resolved.configDesc.digest,
    created: config.created,
    architecture: config.architecture,
    os: config.os,
    variant: config.variant,
    size: manifest.layers.reduce((n, l) => n + l.size, 0),
    layers: manifest.layers,
    diffIds: config.rootfs.diff_ids,
    entrypoint: c.Entrypoint ?? undefined,
    cmd: c.Cmd ?? undefined,
    env: c.Env ?? [],
    workingDir: c.WorkingDir === '' ? undefined : c.WorkingDir,
    user: c.User === '' ? undefined : c.User,
    exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
    volumes: Object.keys(c.Volumes ?? {}).sort(),
    labels: c.Labels ?? {},
    stopSignal: c.StopSignal,
    author: config.author,
    history: config.history ?? [],
  }
}

/** One line of {@link listImages}. */
export interface ImageSummary {
  /** The normalised reference. */
  ref: string
  /** The digest the reference names (manifest or index). */
  digest: Digest
  /** The image id (config digest) for this host's platform; undefined when that cannot be resolved. */
  id: Digest | undefined
  /** The config's `created`; undefined when unknown. */
  created: string | undefined
  /** The sum of the layer sizes; undefined when the image cannot be resolved. */
  size: number | undefined
  /** Why the image could not be resolved for this host (e.g. an index pulled for another platform). */
  problem?: string
}

/**
 * Lists every named image (`docker images`), sorted by reference, resolved for `platform`
 * (default: this host). An image that cannot be resolved is still listed, with `problem`.
 *
 * @example
 * ```ts
 * for (const i of await listImages(content, index)) console.log(i.ref, i.id?.slice(7, 19), i.size)
 * ```
 */
export async function listImages(content: ContentStore, index: ImageIndex, options: { platform?: string } = {}): Promise<ImageSummary[]> {
  const out: ImageSummary[] = []
  for (const record of await index.list()) {
    try {
      const r = await resolveImage(content, index, record.ref, options.platform)
      out.push({
        ref: record.ref,
        digest: record.descriptor.digest,
        id: r.configDesc.digest,
        created: r.config.created,
        size: r.manifest.layers.reduce((n, l) => n + l.size, 0),
      })
    } catch (err) {
      out.push({ ref: record.ref, digest: record.descriptor.digest, id: undefined, created: undefined, size: undefined, problem: (err as Error).message })
    }
  }
  return out
}
