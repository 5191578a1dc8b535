/**
 * Walking an image's content graph: index → platform manifests → config and layers.
 */
import type { Descriptor, Index, Manifest } from '@ctr/oci'
import { StoreError } from '../errors.js'
import type { ContentStore } from '../content/store.js'
import type { ImageRecord, RelatedDigests } from './index-file.js'

/** How deep indexes may nest (an index listing an index listing …). */
export const MAX_INDEX_DEPTH = 8

/** What {@link walkImage} found under a manifest or index. */
export interface ImageTree {
  /** The descriptor walked from. */
  top: Descriptor
  /** The indexes (the top one first, if it is one). */
  indexes: { desc: Descriptor; index: Index }[]
  /** The manifests present in the store, in index order (the top one, if it is a manifest). */
  manifests: { desc: Descriptor; manifest: Manifest }[]
  /** Index entries whose blob is not in the store (a pull stores one platform of an index). */
  missing: Descriptor[]
}

/**
 * Reads an image's graph from the store: the top descriptor must be there (else
 * `ERR_STORE_NOT_FOUND` naming its digest); index entries that are missing are listed in
 * `missing`, not an error — a pull stores only the platform it picked. Manifests of any kind
 * (OCI, Docker schema 2, artifacts, attestations) are included.
 *
 * @example
 * ```ts
 * const tree = await walkImage(content, record.descriptor)
 * const blobs = tree.manifests.flatMap(({ manifest }) => [manifest.config.digest, ...manifest.layers.map((l) => l.digest)])
 * ```
 */
export async function walkImage(content: ContentStore, top: Descriptor, options: { signal?: AbortSignal } = {}): Promise<ImageTree> {
  const tree: ImageTree = { top, indexes: [], manifests: [], missing: [] }
  const visit = async (desc: Descriptor, depth: number, isTop: boolean): Promise<void> => {
    options.signal?.throwIfAborted()
    if (!isTop && !(await content.has(desc))) {
      tree.missing.push(desc)
      return
    }
    const parsed = await content.readManifest(desc)
    if (parsed.kind === 'manifest') {
      tree.manifests.push({ desc, manifest: parsed.value })
      return
    }
    if (depth >= MAX_INDEX_DEPTH) {
      throw new StoreError('ERR_STORE_BAD_IMAGE', `index ${desc.digest}: indexes nest more than ${MAX_INDEX_DEPTH} deep`, { digest: desc.digest })
    }
    tree.indexes.push({ desc, index: parsed.value })
    for (const child of parsed.value.manifests) await visit(child, depth + 1, false)
  }
  await visit(top, 0, true)
  return tree
}

/**
 * A {@link RelatedDigests} for {@link ImageIndex.lookup} that reads the store: the digests of
 * the platform manifests present under a record, and their config digests (image ids).
 * Records whose content cannot be read contribute nothing.
 *
 * @example
 * ```ts
 * await index.lookup('sha256:3f9a0c1d2b7e', imageDigests(content))
 * ```
 */
export function imageDigests(content: ContentStore): RelatedDigests {
  const cache = new Map<string, { manifests: string[]; ids: string[] }>()
  return async (record: ImageRecord) => {
    const key = record.descriptor.digest
    let hit = cache.get(key)
    if (hit === undefined) {
      try {
        const tree = await walkImage(content, record.descriptor)
        hit = { manifests: tree.manifests.map((m) => m.desc.digest), ids: tree.manifests.map((m) => m.manifest.config.digest) }
      } catch {
        hit = { manifests: [], ids: [] }
      }
      cache.set(key, hit)
    }
    return hit
  }
}
