/**
 * Image names as skopeo and podman write them, and the pull policy:
 *
 * - a registry reference: `alpine`, `ghcr.io/o/r:tag`, `…@sha256:…` (pulled into the store);
 * - `oci:/path/to/layout[:ref]`: an OCI image layout directory (imported);
 * - `docker-archive:/path.tar[:ref]`: a `docker save` tarball (imported).
 *
 * Layouts and archives are stored under `localhost/<kind>/<file name>:<ref>` so they never
 * shadow a registry image of the same name.
 */
import path from 'node:path'
import { parseReference } from '@ctr/oci'
import type { ImageStore } from '@ctr/overlay-image'
import type { RegistryClient } from '@ctr/registry-client'
import { RuntimeError } from '../errors.js'

export type ImageName =
  | { kind: 'registry'; ref: string }
  | { kind: 'oci'; dir: string; name?: string }
  | { kind: 'docker-archive'; file: string; name?: string }

/** Splits `oci:/dir:ref` at the last `:` after the path (paths may not contain `:` then). */
function splitTransport(rest: string): { file: string; name?: string } {
  const i = rest.indexOf(':')
  return i < 0 ? { file: rest } : { file: rest.slice(0, i), name: rest.slice(i + 1) }
}

/** Parses an image name; an invalid one is `ERR_RUNTIME_INVALID_OPTIONS` naming `image`. */
export function parseImageName(image: string): ImageName {
  for (const kind of ['oci', 'docker-archive'] as const) {
    if (image.startsWith(`${kind}:`)) {
      const { file, name } = splitTransport(image.slice(kind.length + 1))
      if (!path.isAbsolute(file)) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `image: ${kind}: needs an absolute path, got "${file}"`, { field: 'image' })
      return kind === 'oci' ? { kind, dir: file, ...(name ? { name } : {}) } : { kind, file, ...(name ? { name } : {}) }
    }
  }
  try {
    return { kind: 'registry', ref: parseReference(image).toString() }
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `image: ${(err as Error).message}`, { field: 'image', cause: err })
  }
}

/** The name an image is kept under in the store. */
export function storeRef(name: ImageName): string {
  if (name.kind === 'registry') return name.ref
  const base = path.basename(name.kind === 'oci' ? name.dir : name.file).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '') || 'image'
  const tag = (name.name ?? 'latest').split(':').pop()!.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 128) || 'latest'
  return `localhost/${name.kind}/${base}:${tag}`
}

export interface EnsureImageOptions {
  pull: 'missing' | 'always' | 'never'
  platform?: string
  client: () => RegistryClient
  signal?: AbortSignal
  onProgress?: (p: unknown) => void
}

/** Makes sure the image is in the store (pulling or importing per the policy); returns its store ref. */
export async function ensureImage(store: ImageStore, image: string, o: EnsureImageOptions): Promise<string> {
  const name = parseImageName(image)
  const ref = storeRef(name)
  const present = await store.hasImage(ref)
  if (present && o.pull !== 'always') return ref
  if (!present && o.pull === 'never') {
    throw new RuntimeError('ERR_RUNTIME_IMAGE', `image ${image} is not in the store and the pull policy is "never"`, { field: 'image' })
  }
  try {
    if (name.kind === 'registry') {
      await o.client().pull(ref, {
        into: store,
        ...(o.platform ? { platform: o.platform } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      })
    } else if (name.kind === 'oci') {
      await store.importLayout(name.dir, { ref, ...(name.name ? { name: name.name } : {}), ...(o.signal ? { signal: o.signal } : {}) })
    } else {
      await store.importDockerArchive(name.file, { ref, ...(name.name ? { name: name.name } : {}), ...(o.signal ? { signal: o.signal } : {}) })
    }
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_IMAGE', `get image ${image}: ${(err as Error).message}`, { field: 'image', cause: err })
  }
  return ref
}
