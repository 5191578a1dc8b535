/**
 * References → manifests: images.json, lookups by reference / digest / id prefix, resolution
 * through OCI indexes and Docker manifest lists to the host's (or a given) platform, inspect
 * and list — on images imported from the registry harness's fixture layout, on hand-made
 * ones, and on one pulled from a real registry straight into the store.
 */
import { promises as fs, readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MediaType, hostPlatform, type Descriptor } from '@ctr/oci'
import { RegistryClient } from '@ctr/registry-client'
import { pushFixtures, startRegistry, type Fixtures, type Registry } from '@ctr/registry-harness'
import { StoreError } from '../src/errors.js'
import { ImageIndex, normalizeRef } from '../src/images/index-file.js'
import { inspectImage, listImages } from '../src/images/inspect.js'
import { importLayout } from '../src/images/layout.js'
import { resolveImage } from '../src/images/resolve.js'
import { imageDigests } from '../src/images/walk.js'
import { fixtureLayout, putImage, putIndex } from './helpers/content-images.js'
import { checkStore, names, openStore, runChild, sha256, tempDir, transpileSrc, type TestStore } from './helpers/content-store.js'

let fx: Fixtures
const roots: string[] = []

beforeAll(async () => {
  fx = await fixtureLayout()
})

afterAll(async () => {
  await fx?.close()
  for (const r of roots) await fs.rm(r, { recursive: true, force: true })
})

async function store(): Promise<TestStore> {
  const s = await openStore()
  roots.push(s.root)
  return s
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p
  } catch (err) {
    return err as StoreError
  }
  throw new Error('expected a rejection')
}

/** A store with the fixtures busybox (OCI), busybox:docker, busybox:multi (OCI index), busybox:list (Docker list). */
async function fixtureStore(): Promise<TestStore> {
  const s = await store()
  for (const name of ['busybox', 'dockerImage', 'multi', 'dockerList'] as const) {
    await importLayout(s.content, s.index, fx.dir, { name: fx.images[name].refName })
  }
  return s
}

describe('ImageIndex', () => {
  it('normalises references as Docker does and keeps digest references', () => {
    expect(normalizeRef('busybox')).toBe('docker.io/library/busybox:latest')
    expect(normalizeRef('busybox:1.36')).toBe('docker.io/library/busybox:1.36')
    expect(normalizeRef('index.docker.io/library/busybox')).toBe('docker.io/library/busybox:latest')
    expect(normalizeRef('127.0.0.1:5000/x/y')).toBe('127.0.0.1:5000/x/y:latest')
    const d = sha256('m')
    expect(normalizeRef(`ghcr.io/o/r@${d}`)).toBe(`ghcr.io/o/r@${d}`)
    expect(() => normalizeRef('Busybox')).toThrow(StoreError)
  })

  it('set / get / list / delete, persisted as images.json { version: 1, images }', async () => {
    const { content, index, paths } = await store()
    const { manifest } = await putImage(content)
    const rec = await index.set('busybox', { ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest', keep: 'me' } })
    expect(rec.ref).toBe('docker.io/library/busybox:latest')
    expect((await index.get('busybox:latest'))?.descriptor).toEqual({ ...manifest, annotations: { keep: 'me' } })
    await index.set(`busybox@${manifest.digest}`, manifest)
    await index.set('ghcr.io/o/r:v1', manifest)
    const file = JSON.parse(readFileSync(paths.images, 'utf8'))
    expect(file.version).toBe(1)
    expect(Object.keys(file.images).sort()).toEqual(['docker.io/library/busybox:latest', `docker.io/library/busybox@${manifest.digest}`, 'ghcr.io/o/r:v1'])
    expect(new Date(file.images['ghcr.io/o/r:v1'].created).getTime()).toBeGreaterThan(Date.now() - 60_000)
    expect((await index.list()).map((r) => r.ref)).toEqual(['docker.io/library/busybox:latest', `docker.io/library/busybox@${manifest.digest}`, 'ghcr.io/o/r:v1'])
    // Another instance (another process) sees the same file, and changes made there.
    const other = await ImageIndex.load(paths)
    expect(await other.delete('ghcr.io/o/r:v1')).toBe(true)
    expect(await other.delete('ghcr.io/o/r:v1')).toBe(false)
    expect(await index.get('ghcr.io/o/r:v1')).toBeUndefined()
    expect(names(paths.root).filter((n) => n.startsWith('.tmp-') || n.endsWith('.lock'))).toEqual([])
    expect((await rejection(index.set('Bad Ref', manifest))).code).toBe('ERR_STORE_INVALID')
    expect((await rejection(index.set('x', { ...manifest, digest: 'sha256:zz' as Descriptor['digest'] }))).code).toBe('ERR_STORE_INVALID')
  })

  it('refuses an invalid images.json with ERR_STORE_BAD_IMAGE naming the field', async () => {
    const { paths } = await store()
    await fs.writeFile(paths.images, JSON.stringify({ version: 1, images: { 'docker.io/library/x:latest': { descriptor: { mediaType: 'a/b', digest: 'sha256:1', size: 1 }, created: 'now' } } }))
    const err = await rejection(ImageIndex.load(paths))
    expect(err.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(err.field).toBe('images.json.images["docker.io/library/x:latest"].descriptor.digest')
  })

  it('two processes tagging at once lose nothing (lock file)', async () => {
    const { paths, index } = await store()
    const { dir, cleanup } = transpileSrc()
    try {
      const digest = sha256('shared')
      const script = (who: string) => `
        import { ImageIndex } from './src/images/index-file.js'
        import { StorePaths } from './src/paths.js'
        const index = await ImageIndex.load(new StorePaths(${JSON.stringify(paths.root)}), { fsync: false })
        await Promise.all(Array.from({ length: 25 }, (_, i) => index.set('race/${who}:t' + i, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: ${JSON.stringify(digest)}, size: 1 })))
        console.log('done')
      `
      const runs = ['a', 'b', 'c'].map((w) => runChild(dir, script(w), () => undefined))
      for (const r of runs) expect((await r.exited).code).toBe(0)
      const refs = (await index.list()).map((r) => r.ref)
      expect(refs.length).toBe(75)
      expect(names(paths.root).filter((n) => n !== 'images.json' && n !== 'blobs' && n !== 'tmp')).toEqual([])
    } finally {
      cleanup()
    }
  })

  it('looks images up by reference, digest, image id and unique prefixes; ambiguous prefixes are refused', async () => {
    const { content, index } = await store()
    const a = await putImage(content, { layers: ['a'] })
    const b = await putImage(content, { layers: ['b'] })
    await index.set('a:1', a.manifest)
    await index.set('a:2', a.manifest)
    await index.set('b', b.manifest)
    const related = imageDigests(content)
    const byRef = await index.lookup('a:1', related)
    expect(byRef.by).toBe('ref')
    expect(byRef.records.map((r) => r.ref)).toEqual(['docker.io/library/a:1', 'docker.io/library/a:2'])
    const hexA = a.manifest.digest.slice(7)
    expect((await index.lookup(a.manifest.digest, related)).records.length).toBe(2)
    expect((await index.lookup(hexA.slice(0, 12), related)).matched).toBe(a.manifest.digest)
    expect((await index.lookup(`sha256:${hexA.slice(0, 16)}`)).matched).toBe(a.manifest.digest)
    const id = b.config.digest
    const byId = await index.lookup(id.slice(7, 19), related)
    expect(byId).toEqual({
      by: 'id',
      matched: id,
      records: [expect.objectContaining({ ref: 'docker.io/library/b:latest' })],
      record: expect.objectContaining({ ref: 'docker.io/library/b:latest' }),
    })
    expect((await index.lookup('a:2', related)).record.ref).toBe('docker.io/library/a:2')
    expect((await index.lookup(id, related)).by).toBe('id')
    // Without a way to read content, ids are unknown.
    expect((await rejection(index.lookup(id))).code).toBe('ERR_STORE_NOT_FOUND')
    expect((await rejection(index.lookup(hexA.slice(0, 11), related))).code).toBe('ERR_STORE_NOT_FOUND') // too short for a prefix
    const nf = await rejection(index.lookup('nope:1', related))
    expect(nf.code).toBe('ERR_STORE_NOT_FOUND')
    expect(nf.message).toContain('docker.io/library/nope:1')
    // Two images whose digests share a 12-digit prefix.
    const p = 'sha256:aaaaaaaaaaaa'
    await index.set('c', { mediaType: MediaType.OciManifest, digest: `${p}${'1'.repeat(52)}` as Descriptor['digest'], size: 1 })
    await index.set('d', { mediaType: MediaType.OciManifest, digest: `${p}${'2'.repeat(52)}` as Descriptor['digest'], size: 1 })
    const amb = await rejection(index.lookup('aaaaaaaaaaaa', related))
    expect(amb.code).toBe('ERR_STORE_INVALID')
    expect(amb.message).toContain('ambiguous')
    expect((await index.lookup('aaaaaaaaaaaa1', related)).records.map((r) => r.ref)).toEqual(['docker.io/library/c:latest'])
  })
})

describe('resolveImage', () => {
  it('follows an OCI index and a Docker manifest list to this host, or to a given platform; never an attestation', async () => {
    const { content, index } = await fixtureStore()
    const host = fx.images.busybox
    const multi = await resolveImage(content, index, 'busybox:multi')
    expect(multi.ref).toBe('docker.io/library/busybox:multi')
    expect(multi.indexDigest).toBe(fx.images.multi.digest)
    expect(multi.manifestDesc.digest).toBe(host.digest)
    expect(multi.manifestDesc.platform).toEqual(fx.hostPlatform)
    expect(multi.configDesc.digest).toBe(host.config!.digest)
    expect(multi.config.architecture).toBe(hostPlatform().architecture)

    for (const p of ['linux/arm64', 'linux/arm/v7']) {
      const r = await resolveImage(content, index, 'busybox:multi', p)
      const entry = fx.images.multi.manifests!.find((m) => `${m.platform!.os}/${m.platform!.architecture}/${m.platform!.variant}`.startsWith(p))!
      expect(r.manifestDesc.digest).toBe(entry.digest)
      expect(r.config.architecture).toBe(entry.platform!.architecture)
    }
    const list = await resolveImage(content, index, 'busybox:list', { os: 'linux', architecture: 'arm64' })
    expect(list.indexDigest).toBe(fx.images.dockerList.digest)
    expect(list.manifest.mediaType).toBe(MediaType.DockerManifest)
    expect(list.config.architecture).toBe('arm64')
    const docker = await resolveImage(content, index, 'busybox:docker')
    expect(docker.indexDigest).toBeUndefined()
    expect(docker.manifestDesc).toEqual(expect.objectContaining({ mediaType: MediaType.DockerManifest, digest: fx.images.dockerImage.digest }))
    expect(docker.configDesc.mediaType).toBe(MediaType.DockerConfig)

    const none = await rejection(resolveImage(content, index, 'busybox:multi', 'linux/s390x'))
    expect(none.code).toBe('ERR_STORE_NOT_FOUND')
    expect(none.message).toContain('docker.io/library/busybox:multi')
    expect(none.message).toContain('linux/s390x')
    expect(none.message).toContain('linux/arm64/v8')
    expect(none.message).not.toContain('unknown/unknown')
    const wrong = await rejection(resolveImage(content, index, 'busybox:latest', 'linux/s390x'))
    expect(wrong.code).toBe('ERR_STORE_NOT_FOUND')
  })

  it('resolves by image id, by a platform manifest digest, and by name@digest', async () => {
    const { content, index } = await fixtureStore()
    const arm = fx.images.multi.manifests!.find((m) => m.platform?.architecture === 'arm64')!
    const byChild = await resolveImage(content, index, arm.digest)
    expect(byChild.manifestDesc.digest).toBe(arm.digest)
    expect(byChild.indexDigest).toBe(fx.images.multi.digest)
    // The fixtures' OCI and Docker arm64 placeholders share one config, so one image id: either manifest is right.
    const byId = await resolveImage(content, index, arm.config!.digest.slice(7, 20))
    expect(byId.configDesc.digest).toBe(arm.config!.digest)
    expect(byId.config.architecture).toBe('arm64')
    const own = await putImage(content, { layers: ['only mine'] })
    await index.set('own', own.manifest)
    expect((await resolveImage(content, index, own.config.digest.slice(7, 19))).manifestDesc.digest).toBe(own.manifest.digest)
    const byName = await resolveImage(content, index, `busybox@${arm.digest}`)
    expect(byName.manifestDesc.digest).toBe(arm.digest)
    const top = await resolveImage(content, index, `busybox@${fx.images.dockerImage.digest}`)
    expect(top.manifestDesc.digest).toBe(fx.images.dockerImage.digest)
  })

  it('a blob the store lacks → ERR_STORE_NOT_FOUND naming the digest (and the image)', async () => {
    const { content, index } = await fixtureStore()
    const arm = fx.images.multi.manifests!.find((m) => m.platform?.architecture === 'arm64')!
    await content.delete(arm.digest) // as after a pull for another platform
    const e1 = await rejection(resolveImage(content, index, 'busybox:multi', 'linux/arm64'))
    expect(e1.code).toBe('ERR_STORE_NOT_FOUND')
    expect(e1.digest).toBe(arm.digest)
    expect(e1.message).toContain(arm.digest)
    expect(e1.message).toContain('busybox:multi')
    await content.delete(fx.images.busybox.config!.digest)
    const e2 = await rejection(resolveImage(content, index, 'busybox:latest'))
    expect(e2.code).toBe('ERR_STORE_NOT_FOUND')
    expect(e2.digest).toBe(fx.images.busybox.config!.digest)
    expect(e2.message).toContain('docker.io/library/busybox:latest')
    const e3 = await rejection(resolveImage(content, index, 'not/there:1'))
    expect(e3.code).toBe('ERR_STORE_NOT_FOUND')
    expect(e3.message).toContain('docker.io/not/there:1')
  })

  it('refuses artifacts and images whose config and manifest disagree', async () => {
    const { content, index } = await store()
    const cfg = await content.putBytes(MediaType.OciEmpty, '{}')
    const art = await content.putJson(MediaType.OciManifest, { schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: 'application/x-sbom', config: cfg, layers: [] })
    await index.set('art', art)
    expect((await rejection(resolveImage(content, index, 'art'))).code).toBe('ERR_STORE_UNSUPPORTED')
    const img = await putImage(content, { layers: ['x', 'y'] })
    const short = await content.putJson(MediaType.OciManifest, { schemaVersion: 2, mediaType: MediaType.OciManifest, config: img.config, layers: img.layers.slice(0, 1) })
    await index.set('short', short)
    const bad = await rejection(resolveImage(content, index, 'short'))
    expect(bad.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(bad.field).toBe('config.rootfs.diff_ids')
  })
})

describe('inspect and list', () => {
  it('inspects the fixture busybox: platform, defaults, layers, history', async () => {
    const { content, index } = await fixtureStore()
    const info = inspectImage(await resolveImage(content, index, 'busybox'))
    const bb = fx.images.busybox
    const config = JSON.parse(readFileSync(fx.blobPath(bb.config!.digest), 'utf8'))
    expect(info).toEqual(
      expect.objectContaining({
        ref: 'docker.io/library/busybox:latest',
        digest: bb.digest,
        manifestDigest: bb.digest,
        id: bb.config!.digest,
        created: '2024-01-01T00:00:00Z',
        architecture: fx.hostPlatform.architecture,
        os: 'linux',
        size: bb.layers![0]!.size,
        diffIds: config.rootfs.diff_ids,
        cmd: ['/bin/sh'],
        entrypoint: undefined,
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        workingDir: '/',
        exposedPorts: [],
        volumes: [],
        labels: {},
      }),
    )
    expect(info.layers.map((l) => l.digest)).toEqual(bb.layers!.map((l) => l.digest))
    expect(info.history).toEqual([{ created: '2024-01-01T00:00:00Z', created_by: 'ctr registry-harness: busybox' }])
    const multi = inspectImage(await resolveImage(content, index, 'busybox:multi'))
    expect(multi.digest).toBe(fx.images.multi.digest)
    expect(multi.manifestDigest).toBe(bb.digest)
  })

  it('inspects every execution default of a Docker-style config', async () => {
    const { content, index } = await store()
    const img = await putImage(content, {
      kind: 'docker',
      layers: ['one', 'two!'],
      config: {
        User: 'app:app',
        ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
        Env: ['A=1', 'B=two'],
        Entrypoint: ['/entry.sh'],
        Cmd: null,
        Volumes: { '/data': {}, '/cache': {} },
        WorkingDir: '/srv',
        Labels: { 'org.example': 'yes' },
        StopSignal: 'SIGQUIT',
      },
      extra: { author: 'someone' },
    })
    await index.set('rich:1', img.manifest)
    const info = inspectImage(await resolveImage(content, index, 'rich:1'))
    expect(info).toEqual(
      expect.objectContaining({
        id: img.config.digest,
        user: 'app:app',
        exposedPorts: ['53/udp', '8080/tcp'],
        env: ['A=1', 'B=two'],
        entrypoint: ['/entry.sh'],
        cmd: undefined,
        volumes: ['/cache', '/data'],
        workingDir: '/srv',
        labels: { 'org.example': 'yes' },
        stopSignal: 'SIGQUIT',
        author: 'someone',
        size: 3 + 4,
        diffIds: img.diffIds,
        created: '2024-02-03T04:05:06Z',
      }),
    )
    expect(info.history.map((h) => h.created_by)).toEqual(['step 0', 'step 1'])
  })

  it('lists images sorted by reference with id, created and size; unresolvable ones say why', async () => {
    const { content, index } = await store()
    const a = await putImage(content, { layers: ['12345'] })
    const arm = await putImage(content, { layers: ['arm'], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
    const onlyArm = await putIndex(content, [{ desc: arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }])
    await index.set('zz/a', a.manifest)
    await index.set('aa/arm', onlyArm)
    const list = await listImages(content, index)
    expect(list.map((i) => i.ref)).toEqual(['docker.io/aa/arm:latest', 'docker.io/zz/a:latest'])
    expect(list[1]).toEqual({ ref: 'docker.io/zz/a:latest', digest: a.manifest.digest, id: a.config.digest, created: '2024-02-03T04:05:06Z', size: 5 })
    if (hostPlatform().architecture !== 'arm64') {
      expect(list[0]!.id).toBeUndefined()
      expect(list[0]!.problem).toContain('no manifest for')
    }
    const armList = await listImages(content, index, { platform: 'linux/arm64' })
    expect(armList[0]).toEqual(expect.objectContaining({ id: arm.config.digest, size: 3 }))
  })
})

describe('pull straight into the store', () => {
  let registry: Registry
  beforeAll(async () => {
    registry = await startRegistry()
    await pushFixtures(registry, fx, ['busybox', 'multi'])
  })
  afterAll(async () => {
    await registry?.stop()
  })

  it('client.pull(ref, { into: content }) stores verified blobs and names the image; resolve and inspect work', async () => {
    const { content, index, paths } = await store()
    const client = new RegistryClient({ insecure: [registry.host], dockerConfig: false })
    try {
      const ref = `${registry.host}/library/busybox:multi`
      const pulled = await client.pull(ref, { into: content, platform: 'linux/arm64' })
      const blobs = await checkStore(paths)
      expect(blobs).toContain(pulled.digest)
      expect(blobs).toContain(fx.images.multi.digest)
      expect((await index.get(ref))?.descriptor.digest).toBe(fx.images.multi.digest)
      const r = await resolveImage(content, index, ref, 'linux/arm64')
      expect(r.manifestDesc.digest).toBe(pulled.digest)
      expect(inspectImage(r).architecture).toBe('arm64')
      // The host's platform was not pulled.
      if (hostPlatform().architecture !== 'arm64') {
        const e = await rejection(resolveImage(content, index, ref))
        expect(e.code).toBe('ERR_STORE_NOT_FOUND')
        expect(e.message).toContain('not in the store')
      }
      // A second pull skips every blob.
      let skipped = 0
      await client.pull(ref, { into: content, platform: 'linux/arm64', onProgress: (p) => (p.skipped ? skipped++ : 0) })
      expect(skipped).toBe(2)
    } finally {
      await client.close()
    }
  })
})

export { path }
