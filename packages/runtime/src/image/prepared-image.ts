/**
 * Images ready to run: resolved to one platform's manifest, layers unpacked (the store
 * remembers both while the reference names the same manifest), and users of the image's
 * /etc/passwd resolved — cached here per manifest digest, since layers never change.
 */
import { randomBytes } from 'node:crypto'
import type { ImageStore, ResolvedImage } from '@ctr/overlay-image'
import { resolveUser, type ResolvedUser } from '../image-config/user.js'

export interface PreparedImage {
  /** The store reference. */
  ref: string
  image: ResolvedImage
  /** Chain ids of the unpacked layers, bottom first. */
  chainIds: string[]
}

export class ImageCache {
  /** Resolved users by manifest digest, then by `User` string. */
  #users = new Map<string, Map<string, Promise<ResolvedUser>>>()

  constructor(private readonly store: ImageStore) {}

  /** The image, unpacked (the first time) and resolved. */
  async get(ref: string, options: { platform?: string; signal?: AbortSignal } = {}): Promise<PreparedImage> {
    const { image, chainIds } = await this.store.unpack(ref, options)
    return { ref, image, chainIds }
  }

  /**
   * A Docker `User` resolved through the image's /etc/passwd and /etc/group. The first time
   * for an image, its layers are mounted read-only for the lookup (so symlinks and whiteouts
   * in the image resolve as the container will see them) and unmounted again.
   */
  user(p: PreparedImage, spec: string | undefined): Promise<ResolvedUser> {
    const digest = p.image.manifestDesc.digest
    let users = this.#users.get(digest)
    if (!users) this.#users.set(digest, (users = new Map()))
    const key = spec ?? ''
    const hit = users.get(key)
    if (hit) return hit
    const lookup = this.#lookup(p, spec)
    users.set(key, lookup)
    lookup.catch(() => users.delete(key))
    return lookup
  }

  async #lookup(p: PreparedImage, spec: string | undefined): Promise<ResolvedUser> {
    const id = `users-${randomBytes(6).toString('hex')}`
    const snap = await this.store.snapshots.prepare({
      id, image: p.ref, manifestDigest: p.image.manifestDesc.digest, chainIds: p.chainIds, readonly: true, mount: true,
    })
    try {
      return await resolveUser(snap.rootfs, spec)
    } finally {
      await this.store.remove(id)
    }
  }
}
