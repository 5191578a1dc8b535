/**
 * Chain ids: the name of a stack of layers, as the OCI image spec defines it
 * (`config.md`, "Layer ChainID"). A layer unpacked on top of the same parents is the same
 * directory whatever image it came from, so `layers/<chain id>/` is shared.
 */
import { createHash } from 'node:crypto'
import { isDigest } from '@ctr/oci'
import { StoreError } from '../errors.js'

/**
 * The chain id of a layer from its parent's chain id and its own diff id:
 * `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
 *
 * @throws StoreError `ERR_STORE_BAD_IMAGE` when the diff id (or parent) is not a digest.
 */
export function chainId(parent: string | undefined, diffId: string): string {
  check(diffId, 'diff id')
  if (parent === undefined) return diffId
  check(parent, 'parent chain id')
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`
}

/**
 * The chain ids of an image's layers, bottom first, from its config's `rootfs.diff_ids`.
 *
 * @throws StoreError `ERR_STORE_BAD_IMAGE` when a diff id is not a digest.
 *
 * @example
 * ```ts
 * chainIds(config.rootfs.diff_ids) // [diff_ids[0], sha256(diff_ids[0] + ' ' + diff_ids[1]), …]
 * ```
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = []
  let parent: string | undefined
  for (const d of diffIds) {
    parent = chainId(parent, d)
    out.push(parent)
  }
  return out
}

function check(digest: string, what: string): void {
  if (!isDigest(digest)) throw new StoreError('ERR_STORE_BAD_IMAGE', `${what} \`${digest}\` is not a digest`, { field: 'diffIds', digest })
}
