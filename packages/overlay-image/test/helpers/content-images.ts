/**
 * Test helpers for images: the registry harness's fixture layout (built once per test file),
 * and small hand-made images written straight into a store.
 */
import { MediaType, type Descriptor, type Digest, type Platform } from '@ctr/oci'
import { sharedFixtures, type Fixtures } from '@ctr/registry-harness'
import type { ContentStore } from '../../src/content/store.js'
import { sha256 } from './content-store.js'

let fixtures: Promise<Fixtures> | undefined

/** The harness fixtures (an OCI layout of busybox images and indexes), built once per process. */
export function fixtureLayout(): Promise<Fixtures> {
  fixtures ??= sharedFixtures()
  return fixtures
}

/** Options of {@link putImage}. */
export interface PutImageOptions {
  /** Layer contents (stored as opaque blobs with the uncompressed tar media type). */
  layers?: string[]
  /** The `config` section of the image config. */
  config?: Record<string, unknown>
  platform?: Platform
  kind?: 'oci' | 'docker'
  /** Extra top-level config fields. */
  extra?: Record<string, unknown>
}

/** A small image (config, layers, manifest) written into a store; layers are fake tars whose diff id is their digest. */
export async function putImage(content: ContentStore, options: PutImageOptions = {}): Promise<{ manifest: Descriptor; config: Descriptor; layers: Descriptor[]; diffIds: Digest[] }> {
  const docker = options.kind === 'docker'
  const layers: Descriptor[] = []
  for (const l of options.layers ?? ['layer 0']) layers.push(await content.putBytes(docker ? MediaType.DockerLayer : MediaType.OciLayer, l))
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' }
  const diffIds = layers.map((l) => l.digest)
  const config = await content.putJson(docker ? MediaType.DockerConfig : MediaType.OciConfig, {
    created: '2024-02-03T04:05:06Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: options.config ?? { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '2024-02-03T04:05:06Z', created_by: `step ${i}` })),
    ...options.extra,
  })
  const mediaType = docker ? MediaType.DockerManifest : MediaType.OciManifest
  const manifest = await content.putJson(mediaType, { schemaVersion: 2, mediaType, config, layers })
  return { manifest, config, layers, diffIds }
}

/** An OCI index of `children` (with their platforms) written into a store. */
export async function putIndex(content: ContentStore, children: { desc: Descriptor; platform: Platform }[]): Promise<Descriptor> {
  return content.putJson(MediaType.OciIndex, {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: children.map((c) => ({ mediaType: c.desc.mediaType, digest: c.desc.digest, size: c.desc.size, platform: c.platform })),
  })
}

export { sha256 }
