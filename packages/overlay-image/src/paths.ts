import { join } from 'node:path'

/**
 * Where everything lives under a store root (DESIGN.md, "Storage"):
 *
 * ```
 * <root>/blobs/sha256/<hex>             verified content (manifests, configs, layer blobs)
 * <root>/layers/<chain id hex>/fs/      one unpacked layer, shared by every image that uses it
 * <root>/layers/<chain id hex>/layer.json   { chainId, diffId, parent, size } written last
 * <root>/l/<short id>                   symlink → ../layers/<hex>/fs (short overlay lower paths)
 * <root>/images.json                    reference → descriptor of a manifest or index
 * <root>/snapshots/<id>/{upper,work,merged}/ and snapshot.json
 * <root>/init/<key>/                    an image's init layer: the mount points its containers need
 * <root>/tmp/                           temporaries; everything in it is removed at open
 * ```
 *
 * Temporaries are created under `tmp/` (same file system, so a rename into place is atomic)
 * or as `.tmp-*` siblings; `ImageStore.open` removes both.
 */
export class StorePaths {
  constructor(readonly root: string) {}

  get blobs(): string { return join(this.root, 'blobs') }
  blob(digest: string): string {
    const [algorithm, hex] = digest.split(':') as [string, string]
    return join(this.root, 'blobs', algorithm, hex)
  }
  get layers(): string { return join(this.root, 'layers') }
  /** A layer directory by chain id (`sha256:<hex>` or bare hex). */
  layer(chainId: string): string { return join(this.root, 'layers', hexOf(chainId)) }
  layerFs(chainId: string): string { return join(this.layer(chainId), 'fs') }
  layerMeta(chainId: string): string { return join(this.layer(chainId), 'layer.json') }
  get links(): string { return join(this.root, 'l') }
  get images(): string { return join(this.root, 'images.json') }
  get snapshots(): string { return join(this.root, 'snapshots') }
  snapshot(id: string): string { return join(this.root, 'snapshots', id) }
  snapshotMeta(id: string): string { return join(this.snapshot(id), 'snapshot.json') }
  get tmp(): string { return join(this.root, 'tmp') }
  get initLayers(): string { return join(this.root, 'init') }
  initLayer(key: string): string { return join(this.root, 'init', key) }
}

/** `sha256:<hex>` → `<hex>`; a bare hex stays as it is. */
export function hexOf(digest: string): string {
  const i = digest.indexOf(':')
  return i < 0 ? digest : digest.slice(i + 1)
}

/** What a snapshot records about itself (`snapshots/<id>/snapshot.json`). */
export interface SnapshotRecord {
  id: string
  /** The reference the snapshot was prepared from, as given. */
  image: string
  /** The platform manifest the snapshot's layers come from. */
  manifestDigest: string
  /** Chain ids of its lower layers, bottom first. */
  chainIds: string[]
  readonly: boolean
  /** Mounted with overlay's `volatile` option (no syncs; remove-only after a crash). */
  volatile?: boolean
  /** Its init layer (`init/<key>`), the top lower layer, holding the mount points the image lacks. */
  initLayer?: string
  /** ISO 8601. */
  created: string
}
