/**
 * Push to a real registry with Bearer auth: whole images (a manifest, an index with its
 * children), chunked uploads that follow every new Location, HEAD skipping, cross-repository
 * mounts — each pulled back and compared digest for digest.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeImage, pushFixtures, startFaultServer, startRegistry, type FaultServer, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient, RegistryError } from '../src/index.js'

let source: Registry
let target: Registry
let proxy: FaultServer
let pushed: PushedFixtures
let tmp: string
let pullClient: RegistryClient
let client: RegistryClient
const users = { bob: 'builder' }

beforeAll(async () => {
  source = await startRegistry()
  pushed = await pushFixtures(source, undefined, ['busybox', 'multi'])
  target = await startRegistry({ auth: { type: 'token', users } })
  proxy = await startFaultServer({ upstream: target })
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-push-'))
  pullClient = new RegistryClient({ insecure: [source.host], dockerConfig: false })
  client = new RegistryClient({ insecure: [proxy.host], auth: { [proxy.host]: { username: 'bob', password: 'builder' } }, dockerConfig: false })
})

afterAll(async () => {
  await pullClient?.close()
  await client?.close()
  await proxy?.stop()
  await source?.stop()
  await target?.stop()
  await pushed?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

async function pulled(ref: string, platform?: string): Promise<OciLayout> {
  const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
  await pullClient.pull(ref, { into: l, ...(platform ? { platform } : {}) })
  return l
}

describe('push', () => {
  it('pushes an image, then skips every blob on a second push', async () => {
    const img = pushed.images.busybox
    const l = await pulled(img.reference)
    proxy.reset()
    const first = await client.push(l, img.reference, `${proxy.host}/mine/busybox:v1`)
    expect(first.digest).toBe(img.digest)
    expect(first.uploaded).toBe(2) // config + layer
    const again = await client.push(l, img.reference, `${proxy.host}/mine/busybox:v2`)
    expect(again.existing).toBe(2)
    expect(again.uploaded).toBe(0)
    // pulled back from the target: the same manifest
    const back = await client.resolve(`${proxy.host}/mine/busybox:v1`)
    expect(back.digest).toBe(img.digest)
    // every upload began with a POST without a body (distribution 2.8 drops a POST body)
    expect(proxy.requests.filter((r) => r.method === 'POST').every((r) => Number(r.headers['content-length'] ?? 0) === 0)).toBe(true)
  })

  it('pushes an index with its children first', async () => {
    const img = pushed.images.multi
    // a layout holding the whole index: pull every platform into one layout
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'multi-')))
    for (const p of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7']) await pullClient.pull(img.reference, { into: l, platform: p })
    // the attestation entry's manifest is not in the layout: copy it too
    const att = img.manifests!.find((m) => !m.platform || m.platform.os === 'unknown')!
    const attManifest = await pullClient.manifest(`${source.host}/${img.repository}@${att.digest}`)
    await l.write(att, (async function* () { yield attManifest.bytes })())
    const attParsed = attManifest.parsed.value as { layers: { digest: string; size: number; mediaType: string }[]; config: { digest: string; size: number; mediaType: string } }
    for (const d of [attParsed.config, ...attParsed.layers]) {
      await l.write(d as never, pullClient.blob(`${source.host}/${img.repository}`, d as never))
    }
    proxy.reset()
    const res = await client.push(l, img.reference, `${proxy.host}/mine/multi:latest`)
    expect(res.digest).toBe(img.digest)
    const puts = proxy.requests.filter((r) => r.method === 'PUT' && r.route === 'manifest')
    expect(puts.at(-1)!.reference).toBe('latest')
    expect(puts.length).toBe(img.manifests!.length + 1)
    const back = await client.resolve(`${proxy.host}/mine/multi:latest`, { platform: 'linux/arm64/v8' })
    expect(back.index?.digest).toBe(img.digest)
  })

  it('uploads large blobs in PATCH chunks, following each new Location', async () => {
    const big = await makeImage({ layers: [3 * 2 ** 20 + 1234], dir: path.join(tmp, 'big'), repository: 'bench/big', tag: 'latest' })
    const l = await OciLayout.open(big.layoutDir)
    proxy.reset()
    const res = await client.push(l, big.refName, `${proxy.host}/mine/big:latest`, { chunkSize: 2 ** 20 })
    expect(res.digest).toBe(big.digest)
    const patches = proxy.requests.filter((r) => r.method === 'PATCH')
    const layerSize = big.layers![0]!.size
    expect(patches.length).toBe(Math.ceil(layerSize / 2 ** 20))
    // each PATCH went to the Location the previous answer named (the upload state changes)
    const urls = patches.map((r) => r.url)
    expect(new Set(urls).size).toBe(urls.length)
    const back = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'bigback-')))
    const again = await client.pull(`${proxy.host}/mine/big:latest`, { into: back })
    expect(again.digest).toBe(big.digest)
  })

  it('mounts blobs from another repository instead of uploading them', async () => {
    const img = pushed.images.busybox
    const l = await pulled(img.reference)
    proxy.reset()
    const res = await client.push(l, img.reference, `${proxy.host}/other/busybox:v1`, { mountFrom: 'mine/busybox' })
    expect(res.mounted).toBe(2)
    expect(res.uploaded).toBe(0)
    expect(proxy.requests.filter((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.route !== 'manifest')).length).toBe(0)
    expect(proxy.requests.some((r) => r.method === 'POST' && r.url.includes('mount=') && r.url.includes('from=mine%2Fbusybox'))).toBe(true)
  })

  it('a user without push rights gets ERR_REGISTRY_UNAUTHORIZED or DENIED, naming the upload', async () => {
    const img = pushed.images.busybox
    const l = await pulled(img.reference)
    const anon = new RegistryClient({ insecure: [proxy.host], dockerConfig: false })
    try {
      const err = await anon.push(l, img.reference, `${proxy.host}/anon/busybox:v1`).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect(['ERR_REGISTRY_UNAUTHORIZED', 'ERR_REGISTRY_DENIED']).toContain((err as RegistryError).code)
    } finally {
      await anon.close()
    }
  })

  it('a name the source does not have is ERR_REGISTRY_NOT_FOUND', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'empty-')))
    const err = await client.push(l, 'nothing', `${proxy.host}/mine/x:1`).catch((e: unknown) => e)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_NOT_FOUND')
  })
})
