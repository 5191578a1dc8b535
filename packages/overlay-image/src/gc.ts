/**
 * Garbage collection: blobs and unpacked layers that no image and no snapshot uses.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import * as z from 'zod'
import { ImageConfigSchema, isConfig, isDigest, type Descriptor } from '@ctr/oci'
import { StoreError, ioError, throwIfAborted } from './errors.js'
import type { ContentStore } from './content/store.js'
import { tempName } from './fs/atomic.js'
import type { ImageIndex } from './images/index-file.js'
import { walkImage } from './images/walk.js'
import { chainIds } from './layers/chain-id.js'
import { hexOf, type StorePaths } from './paths.js'
import { forgetShortLinks } from './snapshots/links.js'
import { removeTree } from '@ctr/native'

/** Options of {@link collectGarbage}. */
export interface GcOptions {
  /** Only report what would be removed. */
  dryRun?: boolean
  signal?: AbortSignal
  /**
   * Blobs and layers changed less than this long ago are kept even when nothing names them
   * yet (default 60 s): a pull stores its blobs before it tags the image, and an unpack or a
   * commit in another process may be between two steps. 0 collects everything unreferenced.
   */
  graceMs?: number
}

/** What {@link collectGarbage} removed (or, with `dryRun`, would remove). */
export interface GcResult {
  /** Digests of the blobs removed. */
  removedBlobs: string[]
  /** Chain ids (`sha256:<hex>`) of the unpacked layers removed. */
  removedLayers: string[]
  /** Names of the `l/` short links removed (they pointed at nothing). */
  removedLinks: string[]
  /** Keys of the init layers (`init/<key>`) removed: no snapshot used them. */
  removedInitLayers: string[]
  /** Bytes freed: blob sizes plus the sizes of the files of removed layers. */
  reclaimedBytes: number
}

/** The two fields of `snapshots/<id>/snapshot.json` garbage collection needs. */
const SnapshotRootsSchema = z.looseObject({
  manifestDigest: z.string(),
  chainIds: z.array(z.string()),
  initLayer: z.string().optional(),
})

const LAYER_NAME_RE = /^[0-9a-f]{64}$/

/** The names in a directory; none when it does not exist (yet). */
async function namesIn(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw ioError('read directory', dir, err)
  }
}

/** Sum of the sizes of the regular files under a directory (not following links). */
async function treeSize(dir: string): Promise<number> {
  let total = 0
  const walk = async (d: string): Promise<void> => {
    let entries: import('node:fs').Dirent[]
    try {
      entries = await fs.readdir(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) total += (await fs.lstat(p).catch(() => ({ size: 0 }))).size
    }
  }
  await walk(dir)
  return total
}

/** Whether a path was created or changed within the grace period. */
async function isRecent(p: string, graceMs: number, now: number): Promise<boolean> {
  if (graceMs <= 0) return false
  try {
    const st = await fs.lstat(p)
    return now - Math.max(st.mtimeMs, st.ctimeMs) < graceMs
  } catch {
    return false
  }
}

/**
 * Removes what nothing uses. The roots are every image in the index — walked through its
 * indexes to every platform manifest the store has, then to each one's config and layers,
 * and through the config's `rootfs.diff_ids` to the chain ids of its unpacked layers — and
 * every snapshot (`snapshots/<id>/snapshot.json`: its manifest, walked the same way, and its
 * chain ids). Everything else is removed:
 *
 * - blobs under `blobs/<alg>/` whose name is a digest nothing references;
 * - unpacked layers `layers/<64 hex>/` whose chain id nothing references — renamed into `tmp/`
 *   first, then deleted, so a crash never leaves half a layer under its real name;
 * - `l/` short links that point at nothing.
 *
 * Only those names are touched: temporaries of operations in flight (`.tmp-*`), lock files and
 * anything else are left alone, as are blobs and layers younger than `graceMs`. When a root
 * cannot be read — a corrupt manifest, config or snapshot record — nothing is removed and the
 * error is thrown: collecting on a guess could delete what an image needs.
 *
 * @example
 * ```ts
 * await index.delete('busybox:latest')
 * const { removedBlobs, removedLayers, reclaimedBytes } = await collectGarbage(paths, content, index)
 * const preview = await collectGarbage(paths, content, index, { dryRun: true })
 * ```
 */
export async function collectGarbage(paths: StorePaths, content: ContentStore, index: ImageIndex, options: GcOptions = {}): Promise<GcResult> {
  const { signal } = options
  const dryRun = options.dryRun ?? false
  const graceMs = options.graceMs ?? 60_000
  const now = Date.now()
  const blobs = new Set<string>()
  const layers = new Set<string>()
  const initLayers = new Set<string>()
  const walked = new Set<string>()

  // ---- mark ---------------------------------------------------------------------------------
  const mark = async (top: Descriptor): Promise<void> => {
    if (walked.has(top.digest)) return
    walked.add(top.digest)
    throwIfAborted(signal, 'garbage collection')
    blobs.add(top.digest)
    if (!(await content.has(top.digest))) return
    const tree = await walkImage(content, top, signal ? { signal } : {})
    for (const { desc } of tree.indexes) blobs.add(desc.digest)
    for (const { desc, manifest } of tree.manifests) {
      walked.add(desc.digest)
      blobs.add(desc.digest)
      blobs.add(manifest.config.digest)
      for (const l of manifest.layers) blobs.add(l.digest)
      if (manifest.subject) blobs.add(manifest.subject.digest)
      if (isConfig(manifest.config.mediaType) && (await content.has(manifest.config.digest))) {
        const config = await content.readJson(manifest.config, ImageConfigSchema, { name: 'config' })
        for (const c of chainIds(config.rootfs.diff_ids)) layers.add(hexOf(c))
      }
    }
  }

  for (const record of await index.list()) await mark(record.descriptor)

  const snapshotIds = await namesIn(paths.snapshots)
  for (const id of snapshotIds) {
    if (id.startsWith('.')) continue // temporaries of a prepare or remove in flight
    const file = paths.snapshotMeta(id)
    let text: string
    try {
      text = await fs.readFile(file, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') continue // not a snapshot (yet, or any more)
      throw ioError('read', file, err)
    }
    let roots: z.output<typeof SnapshotRootsSchema>
    try {
      roots = SnapshotRootsSchema.parse(JSON.parse(text))
    } catch (err) {
      throw new StoreError('ERR_STORE_BAD_IMAGE', `garbage collection: snapshot ${id}: snapshot.json is invalid, so what it uses is unknown; nothing was removed`, {
        path: file,
        cause: err,
      })
    }
    for (const c of roots.chainIds) layers.add(hexOf(c))
    if (roots.initLayer) initLayers.add(roots.initLayer)
    if (isDigest(roots.manifestDigest)) {
      blobs.add(roots.manifestDigest)
      if (await content.has(roots.manifestDigest)) {
        // The record has no media type: a generic one lets the manifest's own `mediaType` decide.
        const size = await content.size(roots.manifestDigest)
        await mark({ mediaType: 'application/octet-stream', digest: roots.manifestDigest, size })
      }
    }
  }

  // ---- sweep --------------------------------------------------------------------------------
  const result: GcResult = { removedBlobs: [], removedLayers: [], removedLinks: [], removedInitLayers: [], reclaimedBytes: 0 }

  for await (const digest of content.list()) {
    throwIfAborted(signal, 'garbage collection')
    if (blobs.has(digest)) continue
    const file = content.path(digest)
    if (await isRecent(file, graceMs, now)) continue
    let size = 0
    try {
      size = (await fs.lstat(file)).size
    } catch {
      continue
    }
    if (!dryRun && !(await content.delete(digest))) continue
    result.removedBlobs.push(digest)
    result.reclaimedBytes += size
  }

  const removedLayerHex = new Set<string>()
  const layerNames = await namesIn(paths.layers)
  for (const hex of layerNames) {
    throwIfAborted(signal, 'garbage collection')
    if (!LAYER_NAME_RE.test(hex) || layers.has(hex)) continue
    const dir = path.join(paths.layers, hex)
    if (await isRecent(dir, graceMs, now)) continue
    const size = await treeSize(dir)
    if (!dryRun) {
      // Out of its name first (atomic), then away: a crash leaves a temporary, never half a layer.
      const aside = path.join(paths.tmp, tempName(`gc-layer-${hex.slice(0, 12)}`))
      try {
        await fs.mkdir(paths.tmp, { recursive: true })
        await fs.rename(dir, aside)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue // removed meanwhile
        throw ioError('move aside', dir, err)
      }
      try {
        await fs.rm(aside, { recursive: true, force: true })
      } catch (err) {
        throw ioError('remove', aside, err)
      }
    }
    removedLayerHex.add(hex)
    result.removedLayers.push(`sha256:${hex}`)
    result.reclaimedBytes += size
  }

  const linkNames = await namesIn(paths.links)
  for (const name of linkNames) {
    const link = path.join(paths.links, name)
    let target: string
    try {
      target = await fs.readlink(link)
    } catch {
      continue // not a symlink: not ours to judge
    }
    const resolved = path.resolve(paths.links, target)
    const pointsAtRemoved = [...removedLayerHex].some((hex) => resolved === path.join(paths.layers, hex) || resolved.startsWith(path.join(paths.layers, hex) + path.sep))
    let dangling = pointsAtRemoved
    if (!dangling) {
      try {
        await fs.stat(link)
      } catch (err) {
        dangling = (err as NodeJS.ErrnoException).code === 'ENOENT'
      }
    }
    if (!dangling) continue
    if (!dryRun) {
      try {
        await fs.unlink(link)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('remove', link, err)
      }
    }
    result.removedLinks.push(name)
  }
  if (result.removedLinks.length > 0 && !dryRun) forgetShortLinks()

  // Init layers no snapshot uses (and temporaries of builds that crashed): tiny, but one per
  // image; the next container of the image makes its layer again.
  const initNames = await namesIn(paths.initLayers)
  for (const name of initNames) {
    throwIfAborted(signal, 'garbage collection')
    if (initLayers.has(name)) continue
    const dir = path.join(paths.initLayers, name)
    if (await isRecent(dir, graceMs, now)) continue
    if (!dryRun) {
      try {
        await removeTree(dir)
      } catch (err) {
        throw ioError('remove', dir, err)
      }
    }
    if (!name.startsWith('.')) result.removedInitLayers.push(name)
  }

  result.removedBlobs.sort()
  result.removedLayers.sort()
  result.removedLinks.sort()
  result.removedInitLayers.sort()
  return result
}
