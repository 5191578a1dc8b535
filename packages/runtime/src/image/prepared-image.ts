/**
 * Images ready to run: resolved to one platform's manifest, layers unpacked, and users of
 * the image's /etc/passwd resolved. Layers are immutable, so all of it is cached per manifest
 * digest for the life of the runtime; a reference re-tagged to another image is noticed
 * because the index is asked every time (a cheap read).
 */
import { existsSync } from 'node:fs'
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

interface Entry {
  digest: string
  prepared: PreparedImage
  users: Map<string, Promise<ResolvedUser>>
}

export class ImageCache {
  #entries = new Map<string, Entry>()

  constructor(private readonly store: ImageStore) {}

  /** The image, unpacked (the first time) and resolved. */
  async get(ref: string, options: { platform?: string; signal?: AbortSignal } = {}): Promise<PreparedImage> {
    const key = `${ref}\0${options.platform ?? ''}`
    const record = await this.store.index.get(ref)
    const cached = this.#entries.get(key)
    if (cached && record && cached.digest === record.descriptor.digest && this.#layersPresent(cached.prepared.chainIds)) return cached.prepared
    const { image, chainIds } = await this.store.unpack(ref, options)
    const prepared = { ref, image, chainIds }
    if (record) this.#entries.set(key, { digest: record.descriptor.digest, prepared, users: new Map() })
    return prepared
  }

  /**
   * A Docker `User` resolved through the image's /etc/passwd and /etc/group. The first time
   * for an image, its layers are mounted read-only for the lookup (so symlinks and whiteouts
   * in the image resolve as the container will see them) and unmounted again.
   */
  user(p: PreparedImage, spec: string | undefined): Promise<ResolvedUser> {
    const entry = [...this.#entries.values()].find((e) => e.prepared === p)
    const key = spec ?? ''
    const hit = entry?.users.get(key)
    if (hit) return hit
    const lookup = this.#lookup(p, spec)
    if (entry) {
      entry.users.set(key, lookup)
      lookup.catch(() => entry.users.delete(key))
    }
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

  #layersPresent(chainIds: readonly string[]): boolean {
    return chainIds.every((c) => existsSync(this.store.paths.layerMeta(c)))
  }
}
