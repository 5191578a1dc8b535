/**
 * Hand-made `docker save` tarballs in each layout Docker has written: legacy (`<id>/layer.tar`,
 * `<config hex>.json`, symlinked shared layers) and Docker ≥ 25 (OCI-style `blobs/sha256/<hex>`).
 */
import { createHash, randomBytes } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { tarBuffer, type TarEntry } from '@ctr/registry-harness'

export function hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** A layer tar with the given files (plus a big random one when `big` bytes are asked). */
export function layerTar(files: Record<string, string>, big = 0): Buffer {
  const entries: TarEntry[] = Object.entries(files).map(([p, data]) => ({ type: 'file' as const, path: p, data }))
  if (big > 0) entries.push({ type: 'file', path: 'big.bin', data: randomBytes(big) })
  return tarBuffer(entries)
}

/** An image config for these layer tars (their sha256 are the diff ids). */
export function configFor(tars: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-03-04T05:06:07Z',
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${hex(t)}`) },
      ...extra,
    }),
  )
}

export interface ArchiveImage {
  /** Layer tars (uncompressed, or gzip-compressed with `gzipLayers`). */
  tars: Buffer[]
  repoTags: string[] | null
  config?: Buffer
  gzipLayers?: boolean
}

/**
 * A legacy `docker save` archive: `<hex>.json` configs, `<layer id>/layer.tar` layers, and a
 * layer two images share stored once, the second time as a symlink (as Docker does).
 */
export function legacyArchive(images: ArchiveImage[], options: { manifest?: unknown; omitManifest?: boolean } = {}): Buffer {
  const entries: TarEntry[] = []
  const manifest: unknown[] = []
  const seen = new Map<string, string>()
  let n = 0
  for (const img of images) {
    const config = img.config ?? configFor(img.tars)
    const configName = `${hex(config)}.json`
    entries.push({ type: 'file', path: configName, data: config })
    const layers: string[] = []
    for (const tar of img.tars) {
      const blob = img.gzipLayers ? gzipSync(tar) : tar
      const id = `${hex(`v1 id ${n++}`)}`
      entries.push({ type: 'dir', path: `${id}/` })
      entries.push({ type: 'file', path: `${id}/VERSION`, data: '1.0' })
      const first = seen.get(hex(blob))
      if (first !== undefined) entries.push({ type: 'symlink', path: `${id}/layer.tar`, target: `../${first}` })
      else {
        entries.push({ type: 'file', path: `${id}/layer.tar`, data: blob })
        seen.set(hex(blob), `${id}/layer.tar`)
      }
      layers.push(`${id}/layer.tar`)
    }
    manifest.push({ Config: configName, RepoTags: img.repoTags, Layers: layers })
  }
  if (!options.omitManifest) entries.push({ type: 'file', path: 'manifest.json', data: JSON.stringify(options.manifest ?? manifest) })
  entries.push({ type: 'file', path: 'repositories', data: '{}' })
  return tarBuffer(entries)
}

/** A Docker ≥ 25 archive: config and layers as `blobs/sha256/<hex>`, plus `oci-layout` and `index.json`. */
export function ociStyleArchive(images: ArchiveImage[]): Buffer {
  const entries: TarEntry[] = [{ type: 'file', path: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }]
  const manifest: unknown[] = []
  const have = new Set<string>()
  const add = (data: Buffer): string => {
    const name = `blobs/sha256/${hex(data)}`
    if (!have.has(name)) entries.push({ type: 'file', path: name, data })
    have.add(name)
    return name
  }
  for (const img of images) {
    const config = img.config ?? configFor(img.tars)
    manifest.push({ Config: add(config), RepoTags: img.repoTags, Layers: img.tars.map((t) => add(img.gzipLayers ? gzipSync(t) : t)) })
  }
  entries.push({ type: 'file', path: 'index.json', data: '{"schemaVersion":2,"manifests":[]}' })
  entries.push({ type: 'file', path: 'manifest.json', data: JSON.stringify(manifest) })
  return tarBuffer([{ type: 'dir', path: 'blobs/' }, { type: 'dir', path: 'blobs/sha256/' }, ...entries])
}
