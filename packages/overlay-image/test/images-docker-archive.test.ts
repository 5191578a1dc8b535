/**
 * `docker save` tarballs, both directions, against Debian's skopeo (`docker-archive:`): an
 * archive skopeo writes imports with the same config and diff ids; one we write skopeo reads
 * and copies back out with the same config and diff ids. Hand-made archives cover Docker's
 * legacy layout (symlinked shared layers), Docker ≥ 25's OCI-style layout, compressed layers
 * and archives, large members, and every way an archive can be wrong.
 */
import { createHash } from 'node:crypto'
import { promises as fs, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MediaType } from '@ctr/oci'
import { skopeo, tarBuffer, type Fixtures } from '@ctr/registry-harness'
import { StoreError } from '../src/errors.js'
import { exportDockerArchive, importDockerArchive } from '../src/images/docker-archive.js'
import { importLayout } from '../src/images/layout.js'
import { resolveImage } from '../src/images/resolve.js'
import { configFor, hex, layerTar, legacyArchive, ociStyleArchive } from './helpers/content-archives.js'
import { fixtureLayout } from './helpers/content-images.js'
import { checkStore, names, openStore, tempDir, type TestStore } from './helpers/content-store.js'

let fx: Fixtures
let work: string
const roots: string[] = []

beforeAll(async () => {
  fx = await fixtureLayout()
  work = tempDir('ovl-darch-')
  roots.push(work)
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

function file(name: string, data: Buffer): string {
  const p = path.join(work, name)
  writeFileSync(p, data)
  return p
}

function fixtureConfig(name: 'busybox' | 'layers'): { digest: string; diffIds: string[] } {
  const img = fx.images[name]
  const config = JSON.parse(readFileSync(fx.blobPath(img.config!.digest), 'utf8'))
  return { digest: img.config!.digest, diffIds: config.rootfs.diff_ids }
}

describe('skopeo → ours', () => {
  it.each(['busybox', 'layers'] as const)('imports what `skopeo copy … docker-archive:` wrote (%s): same config, same diff ids', async (name) => {
    const { content, index, paths } = await store()
    const tar = path.join(work, `skopeo-${name}.tar`)
    await skopeo(['copy', `oci:${fx.dir}:${fx.images[name].refName}`, `docker-archive:${tar}:mine/${name}:v1`])
    const [img, ...rest] = await importDockerArchive(content, index, tar)
    expect(rest).toEqual([])
    const want = fixtureConfig(name)
    expect(img!.refs).toEqual([`docker.io/mine/${name}:v1`])
    expect(img!.config.digest).toBe(want.digest) // the image id survives
    expect(img!.config.mediaType).toBe(MediaType.DockerConfig)
    // Layers are the uncompressed tars skopeo wrote: their digests are the diff ids.
    expect(img!.layers.map((l) => l.digest)).toEqual(want.diffIds)
    expect(img!.layers.every((l) => l.mediaType === MediaType.DockerLayer)).toBe(true)
    const r = await resolveImage(content, index, `mine/${name}:v1`)
    expect(r.manifest.mediaType).toBe(MediaType.DockerManifest)
    expect(r.manifestDesc.digest).toBe(img!.manifest.digest)
    expect(r.config.rootfs.diff_ids).toEqual(want.diffIds)
    expect(r.config.config?.Cmd).toEqual(['/bin/sh'])
    await checkStore(paths)
  })
})

describe('ours → skopeo', () => {
  it('writes an archive skopeo inspects and copies out with the same config and diff ids; it imports back', async () => {
    const { content, index } = await store()
    await importLayout(content, index, fx.dir, { name: fx.images.busybox.refName })
    await importLayout(content, index, fx.dir, { name: fx.images.layers.refName })
    await importLayout(content, index, fx.dir, { name: fx.images.busyboxZstd.refName, ref: 'busybox:zstd' })
    const tar = path.join(work, 'ours.tar')
    const out = await exportDockerArchive(content, index, ['busybox:latest', 'test/layers:latest', 'busybox:zstd'], tar)
    // busybox:latest and busybox:zstd are one image (same config and diff ids): one entry, two tags.
    expect(out.images.map((i) => i.repoTags)).toEqual([['busybox:latest', 'busybox:zstd'], ['test/layers:latest']])
    expect(names(work).filter((n) => n.startsWith('.tmp-'))).toEqual([])
    expect(names(path.join(content.paths.tmp))).toEqual([])

    for (const [ref, name] of [
      ['busybox:latest', 'busybox'],
      ['busybox:zstd', 'busybox'],
      ['test/layers:latest', 'layers'],
    ] as const) {
      const want = fixtureConfig(name)
      const raw = await skopeo(['inspect', '--config', '--raw', `docker-archive:${tar}:${ref}`])
      expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(want.digest)
      const info = JSON.parse((await skopeo(['inspect', `docker-archive:${tar}:${ref}`])).stdout)
      expect(info.Layers).toEqual(want.diffIds)
    }
    // skopeo copies an image out of it; the copy has our config and the diff ids as layers.
    const copy = tempDir('ovl-darch-copy-')
    roots.push(copy)
    await skopeo(['copy', `docker-archive:${tar}:test/layers:latest`, `oci:${copy}:x`])
    const fresh = await store()
    const back = await importLayout(fresh.content, fresh.index, copy, { ref: 'x' })
    const r = await resolveImage(fresh.content, fresh.index, 'x')
    expect(back.descriptor.digest).toBe(r.manifestDesc.digest)
    expect(r.configDesc.digest).toBe(fixtureConfig('layers').digest)
    expect(r.config.rootfs.diff_ids).toEqual(fixtureConfig('layers').diffIds)

    // And our archive imports into another store with every image, id and tag.
    const third = await store()
    const imported = await importDockerArchive(third.content, third.index, tar)
    expect(imported.map((i) => [i.refs, i.config.digest])).toEqual([
      [['docker.io/library/busybox:latest', 'docker.io/library/busybox:zstd'], fixtureConfig('busybox').digest],
      [['docker.io/test/layers:latest'], fixtureConfig('layers').digest],
    ])
  })

  it('an image given by id has no RepoTags; a failed export leaves the old file and no temporary', async () => {
    const { content, index } = await store()
    await importLayout(content, index, fx.dir, { name: fx.images.busybox.refName })
    const tar = path.join(work, 'byid.tar')
    const out = await exportDockerArchive(content, index, [fx.images.busybox.config!.digest.slice(7, 19)], tar)
    expect(out.images).toEqual([{ id: fx.images.busybox.config!.digest, repoTags: [], layers: fixtureConfig('busybox').diffIds }])
    const listing = await skopeo(['inspect', `docker-archive:${tar}`])
    expect(JSON.parse(listing.stdout).Layers).toEqual(fixtureConfig('busybox').diffIds)

    const before = readFileSync(tar)
    const unknown = await rejection(exportDockerArchive(content, index, ['busybox', 'nope:1'], tar))
    expect(unknown.code).toBe('ERR_STORE_NOT_FOUND')
    await content.delete(fx.images.busybox.layers![0]!.digest) // fails half-way through writing
    const broken = await rejection(exportDockerArchive(content, index, ['busybox'], tar))
    expect(broken.code).toBe('ERR_STORE_NOT_FOUND')
    expect(readFileSync(tar).equals(before)).toBe(true)
    expect(names(work).filter((n) => n.startsWith('.tmp-'))).toEqual([])
    expect(names(content.paths.tmp)).toEqual([])
  })
})

describe('hand-made archives', () => {
  it('legacy layout: a layer shared through a symlink, large members streamed into the store, several images', async () => {
    const { content, index, paths } = await store()
    const base = layerTar({ 'etc/os': 'base\n' }, 3 << 20) // > 1 MiB: ingested while the archive streams
    const top = layerTar({ 'app/x': 'x\n' })
    const tar = file('legacy.tar', legacyArchive([
      { tars: [base], repoTags: ['base:1'] },
      { tars: [base, top], repoTags: ['app:1', 'app:latest'] },
    ]))
    const imgs = await importDockerArchive(content, index, tar)
    expect(imgs.map((i) => i.refs)).toEqual([['docker.io/library/base:1'], ['docker.io/library/app:1', 'docker.io/library/app:latest']])
    expect(imgs[1]!.layers.map((l) => l.digest)).toEqual([`sha256:${hex(base)}`, `sha256:${hex(top)}`])
    expect(imgs[1]!.layers[0]).toEqual({ mediaType: MediaType.DockerLayer, digest: `sha256:${hex(base)}`, size: base.length })
    const r = await resolveImage(content, index, 'app')
    expect(r.config.rootfs.diff_ids).toEqual([`sha256:${hex(base)}`, `sha256:${hex(top)}`])
    const blobs = await checkStore(paths)
    expect(blobs).toContain(`sha256:${hex(base)}`)
    // Only `name`, under another reference.
    const other = await store()
    const only = await importDockerArchive(other.content, other.index, tar, { name: 'app:latest', ref: 'renamed:2' })
    expect(only.map((i) => i.refs)).toEqual([['docker.io/library/renamed:2']])
    expect((await other.index.list()).map((x) => x.ref)).toEqual(['docker.io/library/renamed:2'])
  })

  it('Docker ≥ 25 OCI-style layout, gzip layers, and a gzipped archive', async () => {
    const { content, index } = await store()
    const tars = [layerTar({ a: '1' }), layerTar({ b: '2' }, 2 << 20)]
    const imgs = await importDockerArchive(content, index, file('oci-style.tar', ociStyleArchive([{ tars, repoTags: ['oci/style:1'], gzipLayers: true }])))
    expect(imgs[0]!.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayerGzip, MediaType.DockerLayerGzip])
    const r = await resolveImage(content, index, 'oci/style:1')
    expect(r.config.rootfs.diff_ids).toEqual(tars.map((t) => `sha256:${hex(t)}`))
    expect(r.manifest.layers.map((l) => l.digest)).toEqual(tars.map((t) => `sha256:${hex(gzipSync(t))}`))

    const gz = file('legacy.tar.gz', gzipSync(legacyArchive([{ tars: [tars[0]!], repoTags: ['zipped:1'] }])))
    const z = await importDockerArchive(content, index, gz)
    expect(z[0]!.refs).toEqual(['docker.io/library/zipped:1'])
    // It exports back with the layers decompressed, as docker load wants them.
    const out = path.join(work, 'regz.tar')
    await exportDockerArchive(content, index, ['oci/style:1'], out)
    const info = JSON.parse((await skopeo(['inspect', `docker-archive:${out}:oci/style:1`])).stdout)
    expect(info.Layers).toEqual(tars.map((t) => `sha256:${hex(t)}`))
  })

  it('refuses broken archives with typed errors naming the member, and tags nothing', async () => {
    const { content, index } = await store()
    const t = layerTar({ f: 'x' })
    const expectErr = async (data: Buffer, code: string, contains: string, options = {}) => {
      const err = await rejection(importDockerArchive(content, index, file('bad.tar', data), options))
      expect(err).toBeInstanceOf(StoreError)
      expect(err.code).toBe(code)
      expect(err.message).toContain(contains)
      return err
    }
    await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'] }], { omitManifest: true }), 'ERR_STORE_BAD_IMAGE', 'no manifest.json')
    const f = await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'] }], { manifest: [{ Config: 'x.json', RepoTags: ['a:1'], Layers: 'oops' }] }), 'ERR_STORE_BAD_IMAGE', 'manifest.json[0].Layers')
    expect(f.field).toBe('manifest.json[0].Layers')
    await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'] }], { manifest: [{ Config: 'missing.json', RepoTags: ['a:1'], Layers: [] }] }), 'ERR_STORE_BAD_IMAGE', '`missing.json`')
    const missingLayer = legacyArchive([{ tars: [t], repoTags: ['a:1'] }], { manifest: [{ Config: `${hex(configFor([t]))}.json`, RepoTags: ['a:1'], Layers: ['nope/layer.tar'] }] })
    await expectErr(missingLayer, 'ERR_STORE_BAD_IMAGE', '`nope/layer.tar`')
    // A layer that is not what the config says.
    const wrong = await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'], config: configFor([layerTar({ f: 'y' })]) }]), 'ERR_STORE_DIFF_ID_MISMATCH', 'rootfs.diff_ids[0]')
    expect(wrong.digest).toBe(`sha256:${hex(t)}`)
    // A config whose name is not its digest.
    await expectErr(legacyRenamed(configFor([t]), t), 'ERR_STORE_DIGEST_MISMATCH', `${'0'.repeat(64)}.json`)
    // An invalid config names the field.
    const badCfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:1'] } }))
    const bc = await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'], config: badCfg }]), 'ERR_STORE_BAD_IMAGE', 'config.rootfs.diff_ids[0]')
    expect(bc.field).toBe('config.rootfs.diff_ids[0]')
    // Not a tar, and a truncated one.
    await expectErr(Buffer.from('this is not a tar archive at all'.repeat(40)), 'ERR_STORE_BAD_IMAGE', 'not a valid tar archive')
    const good = legacyArchive([{ tars: [layerTar({ f: 'x' }, 2 << 20)], repoTags: ['a:1'] }])
    await expectErr(good.subarray(0, 1 << 20), 'ERR_STORE_BAD_IMAGE', 'not a valid tar archive')
    // Names: none and no ref; a ref for several images.
    await expectErr(legacyArchive([{ tars: [t], repoTags: null }]), 'ERR_STORE_INVALID', 'no RepoTags')
    await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'] }, { tars: [t], repoTags: ['b:1'] }]), 'ERR_STORE_INVALID', 'holds 2 images', { ref: 'c:1' })
    await expectErr(legacyArchive([{ tars: [t], repoTags: ['a:1'] }]), 'ERR_STORE_NOT_FOUND', 'a:1', { name: 'zzz' })
    expect(await index.list()).toEqual([])
    expect(names(content.paths.tmp)).toEqual([])
    // Untagged with a ref is fine.
    const ok = await importDockerArchive(content, index, file('untagged.tar', legacyArchive([{ tars: [t], repoTags: null }])), { ref: 'named:now' })
    expect(ok[0]!.refs).toEqual(['docker.io/library/named:now'])
    const missingFile = await rejection(importDockerArchive(content, index, path.join(work, 'absent.tar')))
    expect(missingFile.code).toBe('ERR_STORE_NOT_FOUND')
    expect(statSync(work).isDirectory()).toBe(true)
  })
})

/** An archive whose config member is named by a digest that is not its own. */
function legacyRenamed(config: Buffer, tar: Buffer): Buffer {
  const wrong = `${'0'.repeat(64)}.json`
  return tarBuffer([
    { type: 'file', path: wrong, data: config },
    { type: 'file', path: 'l/layer.tar', data: tar },
    { type: 'file', path: 'manifest.json', data: JSON.stringify([{ Config: wrong, RepoTags: ['a:1'], Layers: ['l/layer.tar'] }]) },
  ])
}
