/**
 * OCI image layouts in and out: the registry harness's fixture layout imported (every
 * manifest kind), exported again and read by Debian's skopeo (`skopeo inspect oci:DIR:REF`,
 * `skopeo copy`), round trips that keep every digest, merges into an existing layout, and the
 * errors of broken layouts.
 */
import { createHash } from 'node:crypto'
import { promises as fs, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Annotation, MediaType, hostPlatform } from '@ctr/oci'
import { skopeo, type Fixtures } from '@ctr/registry-harness'
import { StoreError } from '../src/errors.js'
import { exportLayout, importLayout } from '../src/images/layout.js'
import { resolveImage } from '../src/images/resolve.js'
import { fixtureLayout, putImage } from './helpers/content-images.js'
import { checkStore, names, openStore, tempDir, type TestStore } from './helpers/content-store.js'

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

function dir(prefix: string): string {
  const d = tempDir(prefix)
  roots.push(d)
  return d
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p
  } catch (err) {
    return err as StoreError
  }
  throw new Error('expected a rejection')
}

/** Every blob of a layout hashes to its name; returns the digests. */
function layoutBlobs(d: string): string[] {
  return names(path.join(d, 'blobs', 'sha256')).map((n) => {
    expect(n.startsWith('.tmp-')).toBe(false)
    expect(createHash('sha256').update(readFileSync(path.join(d, 'blobs', 'sha256', n))).digest('hex')).toBe(n)
    return `sha256:${n}`
  })
}

function layoutIndex(d: string): { manifests: { digest: string; mediaType: string; annotations?: Record<string, string>; platform?: unknown }[] } {
  return JSON.parse(readFileSync(path.join(d, 'index.json'), 'utf8'))
}

describe('importLayout', () => {
  it('imports every fixture kind by its ref name, copying exactly the reachable blobs', async () => {
    const { content, index, paths } = await store()
    const imported = await importLayout(content, index, fx.dir, { name: fx.images.busybox.refName })
    expect(imported.ref).toBe('docker.io/library/busybox:latest')
    // The layout's index.json entry, less its ref name (the platform it carries is kept).
    expect(imported.descriptor).toEqual({ mediaType: MediaType.OciManifest, digest: fx.images.busybox.digest, size: fx.images.busybox.size, platform: fx.hostPlatform })
    expect(imported.copied).toBe(3)
    const bb = fx.images.busybox
    expect(await checkStore(paths)).toEqual([bb.digest, bb.config!.digest, bb.layers![0]!.digest].sort())
    // Again: nothing to copy.
    expect((await importLayout(content, index, fx.dir, { name: bb.refName })).copied).toBe(0)

    const multi = await importLayout(content, index, fx.dir, { name: fx.images.multi.refName, ref: 'mine/multi:1' })
    expect(multi.ref).toBe('docker.io/mine/multi:1')
    expect(multi.skipped).toEqual([])
    const blobs = await checkStore(paths)
    for (const m of fx.images.multi.manifests!) {
      expect(blobs).toContain(m.digest)
      expect(blobs).toContain(m.config!.digest)
    }
    for (const name of ['dockerList', 'layers', 'foreign'] as const) {
      const r = await importLayout(content, index, fx.dir, { name: fx.images[name].refName })
      expect(r.descriptor.digest).toBe(fx.images[name].digest)
    }
    expect((await index.list()).map((r) => r.ref)).toEqual([
      'docker.io/library/busybox:latest',
      'docker.io/library/busybox:list',
      'docker.io/mine/multi:1',
      'docker.io/test/foreign:latest',
      'docker.io/test/layers:latest',
    ])
    const layers = await resolveImage(content, index, 'test/layers')
    expect(layers.manifest.layers.length).toBe(2)
  })

  it('picks the only image of a layout without a name, and needs { ref } for a bare tag', async () => {
    const { content, index } = await store()
    const d = dir('ovl-lay1-')
    await skopeo(['copy', `oci:${fx.dir}:${fx.images.busybox.refName}`, `oci:${d}:latest`])
    const err = await rejection(importLayout(content, index, d))
    expect(err.code).toBe('ERR_STORE_INVALID')
    expect(err.field).toBe('ref')
    expect(err.message).toContain('"latest"')
    const r = await importLayout(content, index, d, { ref: 'busybox:from-skopeo' })
    expect(r.descriptor.digest).toBe(fx.images.busybox.digest)
    expect(r.ref).toBe('docker.io/library/busybox:from-skopeo')
  })

  it('refuses what is not a layout, unknown or ambiguous names, and missing or corrupt blobs — naming nothing', async () => {
    const { content, index, paths } = await store()
    const empty = dir('ovl-lay-empty-')
    const notLayout = await rejection(importLayout(content, index, empty, { ref: 'x' }))
    expect(notLayout.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(notLayout.message).toContain('oci-layout')

    const ambiguous = await rejection(importLayout(content, index, fx.dir))
    expect(ambiguous.code).toBe('ERR_STORE_INVALID')
    expect(ambiguous.message).toContain('library/busybox:latest')
    const unknown = await rejection(importLayout(content, index, fx.dir, { name: 'no/such:thing' }))
    expect(unknown.code).toBe('ERR_STORE_NOT_FOUND')
    expect(unknown.message).toContain('"library/busybox:multi"')

    // A copy of busybox with a bad index.json field, then with a corrupt and a missing layer.
    const d = dir('ovl-lay-bad-')
    await skopeo(['copy', `oci:${fx.dir}:${fx.images.busybox.refName}`, `oci:${d}:bb`])
    const good = readFileSync(path.join(d, 'index.json'), 'utf8')
    const idx = JSON.parse(good)
    idx.manifests[0].size = -1
    writeFileSync(path.join(d, 'index.json'), JSON.stringify(idx))
    const badField = await rejection(importLayout(content, index, d, { ref: 'x' }))
    expect(badField.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(badField.field).toBe('index.json.manifests[0].size')
    writeFileSync(path.join(d, 'index.json'), good)

    const layer = fx.images.busybox.layers![0]!
    const layerFile = path.join(d, 'blobs', 'sha256', layer.digest.slice(7))
    const bytes = readFileSync(layerFile)
    const corrupt = Buffer.from(bytes)
    corrupt[1000] = corrupt[1000]! ^ 0xff
    writeFileSync(layerFile, corrupt)
    const mismatch = await rejection(importLayout(content, index, d, { ref: 'x' }))
    expect(mismatch.code).toBe('ERR_STORE_DIGEST_MISMATCH')
    await fs.rm(layerFile)
    const missing = await rejection(importLayout(content, index, d, { ref: 'x' }))
    expect(missing.code).toBe('ERR_STORE_NOT_FOUND')
    expect(missing.digest).toBe(layer.digest)
    expect(await index.list()).toEqual([])
    // Blobs verified before the failure may stay (garbage collection's business), never a corrupt one or a temporary.
    expect(await checkStore(paths)).not.toContain(layer.digest)
  })
})

describe('exportLayout', () => {
  it('exports an image skopeo reads (inspect and copy), with every digest kept', async () => {
    const { content, index } = await store()
    await importLayout(content, index, fx.dir, { name: fx.images.busybox.refName })
    const out = path.join(dir('ovl-exp-'), 'layout')
    const exported = await exportLayout(content, index, 'busybox', out)
    expect(exported.name).toBe('docker.io/library/busybox:latest')
    expect(exported.written).toBe(3)
    expect(JSON.parse(readFileSync(path.join(out, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' })
    expect(layoutIndex(out).manifests).toEqual([
      {
        mediaType: MediaType.OciManifest,
        digest: fx.images.busybox.digest,
        size: fx.images.busybox.size,
        platform: fx.hostPlatform,
        annotations: { [Annotation.RefName]: 'docker.io/library/busybox:latest' },
      },
    ])
    expect(layoutBlobs(out).sort()).toEqual([fx.images.busybox.digest, fx.images.busybox.config!.digest, fx.images.busybox.layers![0]!.digest].sort())

    const { stdout } = await skopeo(['inspect', `oci:${out}:docker.io/library/busybox:latest`])
    const info = JSON.parse(stdout)
    expect(info.Digest).toBe(fx.images.busybox.digest)
    expect(info.Layers).toEqual([fx.images.busybox.layers![0]!.digest])
    expect(info.Architecture).toBe(hostPlatform().architecture)
    const raw = await skopeo(['inspect', '--raw', `oci:${out}:docker.io/library/busybox:latest`])
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(fx.images.busybox.digest)

    // skopeo copies it out of our layout, and the copy imports back to the same image.
    const copy = dir('ovl-exp-copy-')
    await skopeo(['copy', `oci:${out}:docker.io/library/busybox:latest`, `oci:${copy}:bb`])
    const again = await store()
    const back = await importLayout(again.content, again.index, copy, { ref: 'busybox' })
    expect(back.descriptor.digest).toBe(fx.images.busybox.digest)
    expect((await resolveImage(again.content, again.index, 'busybox')).configDesc.digest).toBe(fx.images.busybox.config!.digest)
  })

  it('round-trips an OCI index (and a Docker list) whole; skopeo copies --all from it', async () => {
    const { content, index } = await store()
    await importLayout(content, index, fx.dir, { name: fx.images.multi.refName })
    await importLayout(content, index, fx.dir, { name: fx.images.dockerList.refName })
    const out = dir('ovl-exp-multi-')
    const a = await exportLayout(content, index, 'busybox:multi', out, { name: 'multi' })
    expect(a.descriptor.digest).toBe(fx.images.multi.digest)
    await exportLayout(content, index, 'busybox:list', out, { name: 'list' })
    const idx = layoutIndex(out)
    expect(idx.manifests.map((m) => [m.annotations?.[Annotation.RefName], m.digest])).toEqual([
      ['multi', fx.images.multi.digest],
      ['list', fx.images.dockerList.digest],
    ])
    const raw = await skopeo(['inspect', '--raw', `oci:${out}:multi`])
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(fx.images.multi.digest)
    const all = dir('ovl-exp-all-')
    await skopeo(['copy', '--all', `oci:${out}:multi`, `oci:${all}:multi`])
    const fresh = await store()
    const back = await importLayout(fresh.content, fresh.index, all, { ref: 'multi' })
    expect(back.descriptor.digest).toBe(fx.images.multi.digest)
    const arm = await resolveImage(fresh.content, fresh.index, 'multi', 'linux/arm64')
    expect(arm.manifestDesc.digest).toBe(fx.images.multi.manifests!.find((m) => m.platform?.architecture === 'arm64')!.digest)
  })

  it('exports only the platform manifest of an index the store holds in part, or the one asked for', async () => {
    const { content, index } = await store()
    await importLayout(content, index, fx.dir, { name: fx.images.multi.refName })
    const arm = fx.images.multi.manifests!.find((m) => m.platform?.architecture === 'arm64')!
    const out = dir('ovl-exp-arm-')
    const one = await exportLayout(content, index, 'busybox:multi', out, { name: 'arm', platform: 'linux/arm64' })
    expect(one.descriptor).toEqual(expect.objectContaining({ digest: arm.digest, platform: arm.platform }))
    expect(layoutBlobs(out).sort()).toEqual([arm.digest, arm.config!.digest, ...arm.layers!.map((l) => l.digest)].sort())

    await content.delete(arm.digest) // as after a pull of the host's platform only
    const all = await rejection(exportLayout(content, index, 'busybox:multi', dir('ovl-exp-x-'), { platform: 'all' }))
    expect(all.code).toBe('ERR_STORE_NOT_FOUND')
    expect(all.message).toContain(arm.digest)
    const out2 = dir('ovl-exp-host-')
    const host = await exportLayout(content, index, 'busybox:multi', out2, { name: 'host' })
    expect(host.descriptor.digest).toBe(fx.images.busybox.digest)
    const info = JSON.parse((await skopeo(['inspect', `oci:${out2}:host`])).stdout)
    expect(info.Digest).toBe(fx.images.busybox.digest)
  })

  it('replaces an entry of the same name when merging, and refuses a directory that is not a layout', async () => {
    const { content, index } = await store()
    const a = await putImage(content, { layers: ['aaa'] })
    const b = await putImage(content, { layers: ['bbb'] })
    await index.set('img:a', a.manifest)
    await index.set('img:b', b.manifest)
    const out = dir('ovl-exp-merge-')
    await exportLayout(content, index, 'img:a', out, { name: 'x' })
    await exportLayout(content, index, 'img:b', out, { name: 'y' })
    await exportLayout(content, index, 'img:b', out, { name: 'x' })
    expect(layoutIndex(out).manifests.map((m) => [m.annotations?.[Annotation.RefName], m.digest])).toEqual([
      ['y', b.manifest.digest],
      ['x', b.manifest.digest],
    ])
    expect(names(out).filter((n) => n.startsWith('.tmp-'))).toEqual([])
    const other = dir('ovl-exp-other-')
    writeFileSync(path.join(other, 'precious.txt'), 'keep me')
    const refused = await rejection(exportLayout(content, index, 'img:a', other))
    expect(refused.code).toBe('ERR_STORE_INVALID')
    expect(names(other)).toEqual(['precious.txt'])
    expect((await rejection(exportLayout(content, index, 'img:none', out))).code).toBe('ERR_STORE_NOT_FOUND')
  })
})
