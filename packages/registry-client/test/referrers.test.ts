/**
 * Referrers: distribution 2.8 has no referrers API (404), so the client falls back to the
 * tag schema — an index tagged `sha256-<hex>` listing the manifests whose subject is the image.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { digestOf, splitDigest, type Descriptor } from '@ctr/oci'
import { pushFixtures, startRegistry, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient } from '../src/index.js'

let registry: Registry
let pushed: PushedFixtures
let tmp: string
let client: RegistryClient

beforeAll(async () => {
  registry = await startRegistry()
  pushed = await pushFixtures(registry, undefined, ['busybox'])
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-referrers-'))
  client = new RegistryClient({ insecure: [registry.host], dockerConfig: false })
})

afterAll(async () => {
  await client?.close()
  await registry?.stop()
  await pushed?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

async function put(l: OciLayout, bytes: Buffer, mediaType: string): Promise<Descriptor> {
  const desc = { mediaType, digest: digestOf(bytes), size: bytes.length } as Descriptor
  await l.write(desc, (async function* () { yield bytes })())
  return desc
}

describe('referrers', () => {
  it('an image with no referrers has none', async () => {
    expect(await client.referrers(pushed.images.busybox.reference)).toEqual([])
  })

  it('finds an SBOM through the tag-schema fallback, and filters by artifact type', async () => {
    const img = pushed.images.busybox
    const subject = { mediaType: img.mediaType, digest: img.digest, size: img.size } as Descriptor
    const l = await OciLayout.open(path.join(tmp, 'artifact'))
    const empty = await put(l, Buffer.from('{}'), 'application/vnd.oci.empty.v1+json')
    const sbom = await put(l, Buffer.from('{"spdxVersion":"SPDX-2.3"}'), 'application/spdx+json')
    const artifact = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/spdx+json',
      config: empty,
      layers: [sbom],
      subject,
    }))
    const artifactDesc = { ...(await put(l, artifact, 'application/vnd.oci.image.manifest.v1+json')), artifactType: 'application/spdx+json' }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [artifactDesc] }))
    const indexDesc = await put(l, index, 'application/vnd.oci.image.index.v1+json')
    const { algorithm, hex } = splitDigest(img.digest)
    await l.tag('referrers', indexDesc)
    await client.push(l, 'referrers', `${registry.host}/${img.repository}:${algorithm}-${hex}`)

    const found = await client.referrers(img.reference)
    expect(found.map((d) => d.digest)).toEqual([artifactDesc.digest])
    expect(found[0]!.artifactType).toBe('application/spdx+json')
    expect(await client.referrers(img.digestReference, { artifactType: 'application/spdx+json' })).toHaveLength(1)
    expect(await client.referrers(img.digestReference, { artifactType: 'application/vnd.example.other' })).toEqual([])
  })
})
