/**
 * Pulls from a real registry (Debian's docker-registry on 127.0.0.1) of fixture images built
 * without Docker: every manifest kind, platform selection, progress, skipping what the sink
 * has, foreign layers, tags, delete, abort — with the layout checked blob by blob.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pushFixtures, startRegistry, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient, RegistryError, type PullProgress } from '../src/index.js'

let registry: Registry
let pushed: PushedFixtures
let tmp: string
let client: RegistryClient

beforeAll(async () => {
  registry = await startRegistry()
  pushed = await pushFixtures(registry)
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-pull-'))
  client = new RegistryClient({ insecure: [registry.host], dockerConfig: false })
})

afterAll(async () => {
  await client?.close()
  await registry?.stop()
  await pushed?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

async function layout(): Promise<OciLayout> {
  return OciLayout.open(await fs.mkdtemp(path.join(tmp, 'layout-')))
}

/** Every blob in a layout hashes to its name, and no temporary is left. */
async function checkLayout(l: OciLayout): Promise<string[]> {
  const dir = path.join(l.dir, 'blobs', 'sha256')
  const names = await fs.readdir(dir)
  for (const n of names) {
    expect(n.startsWith('.tmp-')).toBe(false)
    const hash = createHash('sha256').update(await fs.readFile(path.join(dir, n))).digest('hex')
    expect(hash).toBe(n)
  }
  return names
}

describe('pull', () => {
  it.each(['busybox', 'busyboxZstd', 'busyboxUncompressed', 'dockerImage'] as const)('pulls %s: digests, blobs and the ref in index.json', async (name) => {
    const img = pushed.images[name]
    const l = await layout()
    const got = await client.pull(img.reference, { into: l })
    expect(got.digest).toBe(img.digest)
    expect(got.config.rootfs.diff_ids.length).toBe(got.manifest.layers.length)
    const blobs = await checkLayout(l)
    for (const layer of got.manifest.layers) expect(blobs).toContain(layer.digest.slice('sha256:'.length))
    expect(blobs).toContain(got.manifest.config.digest.slice('sha256:'.length))
    expect((await l.resolve(got.reference.toString()))?.digest).toBe(img.digest)
  })

  it('pulls into a layout opened without fsync, with the same verified result', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'nosync-')), { fsync: false })
    const got = await client.pull(pushed.images.busybox.reference, { into: l })
    expect(got.digest).toBe(pushed.images.busybox.digest)
    await checkLayout(l)
  })

  it('picks the platform from an OCI index, never the attestation entry', async () => {
    const img = pushed.images.multi
    for (const platform of ['linux/arm64/v8', 'linux/arm/v7', 'linux/amd64']) {
      const l = await layout()
      const got = await client.pull(img.reference, { into: l, platform })
      const entry = img.manifests!.find((m) => m.platform && `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? '/' + m.platform.variant : ''}` === platform)
      expect(got.digest).toBe(entry!.digest)
      expect(got.indexDigest).toBe(img.digest)
      // the index is stored and named, the platform manifest stored
      expect((await l.resolve(got.reference.toString()))?.digest).toBe(img.digest)
      await checkLayout(l)
    }
  })

  it('a v8 arm64 request falls back to no variant, and an arm/v6 host takes nothing newer', async () => {
    const list = pushed.images.dockerList
    const got = await client.resolve(list.reference, { platform: 'linux/arm64' })
    expect(got.platform?.architecture).toBe('arm64')
    const err = await client.resolve(list.reference, { platform: 'linux/arm/v6' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_NOT_FOUND')
  })

  it('names the platforms there are when none fits', async () => {
    const err = await client.resolve(pushed.images.multi.reference, { platform: 'linux/s390x' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_NOT_FOUND')
    expect((err as Error).message).toMatch(/linux\/arm64/)
    expect((err as Error).message).not.toMatch(/unknown\/unknown/)
  })

  it('reports progress up to the total, and skips what the sink already has', async () => {
    const l = await layout()
    const events: PullProgress[] = []
    await client.pull(pushed.images.busybox.reference, { into: l, onProgress: (p) => events.push(p) })
    const last = events.filter((e) => e.kind !== 'manifest').at(-1)!
    expect(last.totalBytes).toBe(last.totalSize)
    expect(events.some((e) => e.kind === 'layer' && e.bytes > 0 && e.bytes < e.size) || events.filter((e) => e.kind === 'layer').length > 0).toBe(true)
    const again: PullProgress[] = []
    await client.pull(pushed.images.busybox.reference, { into: l, onProgress: (p) => again.push(p) })
    expect(again.filter((e) => e.kind !== 'manifest').every((e) => e.skipped)).toBe(true)
  })

  it('fetches a foreign layer from its urls, without the registry credentials', async () => {
    const l = await layout()
    const server = pushed.fixtures.foreignServer!
    server.reset()
    const got = await client.pull(pushed.images.foreign.reference, { into: l })
    expect(got.digest).toBe(pushed.images.foreign.digest)
    const fetched = server.requests.filter((r) => r.method === 'GET')
    expect(fetched.length).toBeGreaterThan(0)
    expect(fetched.every((r) => r.headers.authorization === undefined)).toBe(true)
    await checkLayout(l)
  })

  it('an unknown tag or repository is ERR_REGISTRY_NOT_FOUND with the registry’s reason', async () => {
    for (const ref of [`${registry.host}/library/busybox:nope`, `${registry.host}/no/such:latest`]) {
      const err = await client.resolve(ref).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect((err as RegistryError).code).toBe('ERR_REGISTRY_NOT_FOUND')
      expect((err as RegistryError).status).toBe(404)
      expect((err as Error).message).toMatch(/MANIFEST_UNKNOWN|NAME_UNKNOWN/)
    }
  })

  it('an invalid reference is ERR_REGISTRY_INVALID before any request', async () => {
    const err = await client.resolve('UPPER/case').catch((e: unknown) => e)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_INVALID')
  })
})

describe('tags, catalog, delete', () => {
  it('lists every tag of a repository', async () => {
    const tags = await client.tags(`${registry.host}/test/tags`)
    expect(tags.length).toBe(120)
    expect(tags).toContain('t000')
    expect(tags).toContain('t119')
  })

  it('lists repositories with catalog pagination', async () => {
    const repos = await client.catalog(registry.host, { pageSize: 2 })
    expect(repos).toEqual(expect.arrayContaining(['library/busybox', 'test/layers', 'test/tags']))
    expect(new Set(repos).size).toBe(repos.length)
  })

  it('deletes a manifest by tag (resolved to its digest)', async () => {
    const img = pushed.images.layers
    const digest = await client.deleteManifest(img.reference)
    expect(digest).toBe(img.digest)
    const err = await client.manifest(img.digestReference).catch((e: unknown) => e)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_NOT_FOUND')
  })
})
