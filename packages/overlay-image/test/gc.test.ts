/**
 * Garbage collection on a real store: exactly the unreferenced blobs, unpacked layers and
 * dangling short links go; what an image (through indexes, configs and chain ids) or a
 * snapshot record uses stays; temporaries and foreign names are never touched.
 */
import { createHash } from 'node:crypto'
import { promises as fs, existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Descriptor } from '@ctr/oci'
import { StoreError } from '../src/errors.js'
import { collectGarbage } from '../src/gc.js'
import type { StorePaths } from '../src/paths.js'
import { putImage, putIndex } from './helpers/content-images.js'
import { checkStore, names, openStore, type TestStore } from './helpers/content-store.js'

const roots: string[] = []
afterAll(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true })
})

async function store(): Promise<TestStore> {
  const s = await openStore()
  roots.push(s.root)
  return s
}

/** The OCI chain ids, computed here independently of the package. */
function chain(diffIds: string[]): string[] {
  const out: string[] = []
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${createHash('sha256').update(`${out.at(-1)} ${d}`).digest('hex')}`)
  return out
}

/** A fake unpacked layer (`layers/<hex>/fs/file` and `layer.json`) with its short link. */
function unpacked(paths: StorePaths, chainId: string, bytes = 100): string {
  const hex = chainId.slice(7)
  mkdirSync(path.join(paths.layers, hex, 'fs', 'etc'), { recursive: true })
  writeFileSync(path.join(paths.layers, hex, 'fs', 'etc', 'file'), Buffer.alloc(bytes))
  writeFileSync(path.join(paths.layers, hex, 'layer.json'), JSON.stringify({ chainId }))
  mkdirSync(paths.links, { recursive: true })
  symlinkSync(`../layers/${hex}/fs`, path.join(paths.links, hex.slice(0, 12)))
  return hex
}

function snapshot(paths: StorePaths, id: string, manifestDigest: string, chainIds: string[]): void {
  mkdirSync(path.join(paths.snapshot(id), 'upper'), { recursive: true })
  writeFileSync(paths.snapshotMeta(id), JSON.stringify({ id, image: 'whatever', manifestDigest, chainIds, readonly: false, created: new Date().toISOString() }))
}

describe('collectGarbage', () => {
  it('removes exactly what no image or snapshot references', async () => {
    const { content, index, paths } = await store()
    // A and B share their base layer; B is reached through an index (with an entry the store lacks).
    const a = await putImage(content, { layers: ['base', 'a-top'] })
    const b = await putImage(content, { layers: ['base', 'b-top'], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
    const absent: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'e'.repeat(64)}`, size: 10 }
    const bIndex = await content.putJson('application/vnd.oci.image.index.v1+json', {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { ...b.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { ...absent, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    })
    // C was untagged: garbage. D is untagged but a snapshot uses it. E is untagged and fresh.
    const c = await putImage(content, { layers: ['base', 'c-top', 'c-more'] })
    const d = await putImage(content, { layers: ['d-only'] })
    const stray = await content.putBytes('application/octet-stream', 'orphan blob')
    await index.set('a:1', a.manifest)
    await index.set('a:also', a.manifest)
    await index.set('b:multi', bIndex)
    await index.set('dangling:1', { ...absent, digest: `sha256:${'f'.repeat(64)}` }) // names a blob that is gone

    const [aL, bL, cL, dL] = [a, b, c, d].map((img) => chain(img.diffIds))
    for (const ids of [aL!, bL!, cL!, dL!]) for (const id of ids) if (!existsSync(path.join(paths.layers, id.slice(7)))) unpacked(paths, id)
    const orphanLayer = unpacked(paths, `sha256:${'9'.repeat(64)}`, 5000)
    snapshot(paths, 'c1', d.manifest.digest, dL!)
    // Things gc must never touch.
    symlinkSync('../layers/nothing/fs', path.join(paths.links, 'gone'))
    mkdirSync(path.join(paths.layers, '.tmp-999999999-abc-unpacking'), { recursive: true })
    mkdirSync(path.join(paths.layers, 'not-a-chain-id'), { recursive: true })
    writeFileSync(path.join(paths.blobs, 'sha256', 'README'), 'not a digest')
    mkdirSync(path.join(paths.snapshots, '.tmp-1-abc-preparing'), { recursive: true })

    const cOnly = [c.manifest.digest, c.config.digest, ...c.layers.slice(1).map((l) => l.digest)]
    const expectedBlobs = [...cOnly, stray.digest].sort()
    const expectedLayers = [...cL!.filter((id) => !aL!.includes(id)), `sha256:${orphanLayer}`].sort()

    let expectedBytes = 0
    for (const digest of expectedBlobs) expectedBytes += await content.size(digest)
    for (const id of expectedLayers) expectedBytes += du(path.join(paths.layers, id.slice(7)))
    expect(expectedBytes).toBeGreaterThan(5000)

    const preview = await collectGarbage(paths, content, index, { dryRun: true, graceMs: 0 })
    expect(preview.removedBlobs).toEqual(expectedBlobs)
    expect(preview.removedLayers).toEqual(expectedLayers)
    for (const digest of expectedBlobs) expect(await content.has(digest)).toBe(true) // dry run
    for (const id of expectedLayers) expect(existsSync(path.join(paths.layers, id.slice(7)))).toBe(true)

    const res = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(res.removedBlobs).toEqual(expectedBlobs)
    expect(res.removedLayers).toEqual(expectedLayers)
    expect(res.removedLinks).toEqual(['gone', ...expectedLayers.map((id) => id.slice(7, 19))].sort())
    expect(res.reclaimedBytes).toBe(expectedBytes)
    expect(res).toEqual(preview)

    // What is left: exactly the referenced blobs and layers, plus the untouchables.
    const kept = [a, b, d].flatMap((img) => [img.manifest.digest, img.config.digest, ...img.layers.map((l) => l.digest)])
    expect(names(path.join(paths.blobs, 'sha256'))).toContain('README')
    await fs.rm(path.join(paths.blobs, 'sha256', 'README'))
    expect((await checkStore(paths)).sort()).toEqual([...new Set([...kept, bIndex.digest])].sort())
    expect(names(paths.layers)).toEqual(
      [...new Set([...aL!, ...bL!, ...dL!].map((id) => id.slice(7))), '.tmp-999999999-abc-unpacking', 'not-a-chain-id'].sort(),
    )
    expect(names(paths.snapshots)).toEqual(['.tmp-1-abc-preparing', 'c1'])
    expect(names(paths.tmp)).toEqual([])
    for (const link of names(paths.links)) expect(existsSync(path.join(paths.links, link))).toBe(true)

    // Nothing more to collect.
    expect(await collectGarbage(paths, content, index, { graceMs: 0 })).toEqual({ removedBlobs: [], removedLayers: [], removedLinks: [], removedInitLayers: [], reclaimedBytes: 0 })

    // Untag A: its own blobs and layers go, the base B shares stays.
    await index.delete('a:1')
    expect((await collectGarbage(paths, content, index, { graceMs: 0 })).removedBlobs).toEqual([])
    await index.delete('a:also')
    const afterA = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(afterA.removedBlobs).toEqual([a.manifest.digest, a.config.digest, a.layers[1]!.digest].sort())
    expect(afterA.removedLayers).toEqual([aL![1]!])
    // Remove the snapshot record: D goes too.
    await fs.rm(paths.snapshot('c1'), { recursive: true })
    const afterD = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(afterD.removedBlobs).toEqual([d.manifest.digest, d.config.digest, d.layers[0]!.digest].sort())
    expect(afterD.removedLayers).toEqual(dL)
  })

  it('keeps unreferenced blobs and layers younger than the grace period (a pull tags last)', async () => {
    const { content, index, paths } = await store()
    const fresh = await content.putBytes('application/octet-stream', 'just pulled, not tagged yet')
    const layer = unpacked(paths, `sha256:${'7'.repeat(64)}`)
    const res = await collectGarbage(paths, content, index)
    expect(res).toEqual({ removedBlobs: [], removedLayers: [], removedLinks: [], removedInitLayers: [], reclaimedBytes: 0 })
    expect(await content.has(fresh)).toBe(true)
    const now = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(now.removedBlobs).toEqual([fresh.digest])
    expect(now.removedLayers).toEqual([`sha256:${layer}`])
  })

  it('removes nothing when a root cannot be read (corrupt snapshot record or manifest)', async () => {
    const { content, index, paths } = await store()
    const garbage = await content.putBytes('application/octet-stream', 'garbage')
    mkdirSync(paths.snapshot('broken'), { recursive: true })
    writeFileSync(paths.snapshotMeta('broken'), '{"manifestDigest": 12')
    const err = await (collectGarbage(paths, content, index, { graceMs: 0 }).catch((e: unknown) => e) as Promise<StoreError>)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(err.message).toContain('broken')
    expect(await content.has(garbage)).toBe(true)
    await fs.rm(paths.snapshot('broken'), { recursive: true })

    const img = await putImage(content)
    await index.set('img', img.manifest)
    writeFileSync(content.path(img.manifest.digest), '{"schemaVersion": 2, "corrupted": true}')
    const err2 = await (collectGarbage(paths, content, index, { graceMs: 0 }).catch((e: unknown) => e) as Promise<StoreError>)
    expect(err2.code).toMatch(/^ERR_STORE_(DIGEST|SIZE)_MISMATCH$/)
    expect(await content.has(garbage)).toBe(true)
    expect(await content.has(img.config)).toBe(true)
  })

  it('follows an index to every platform manifest the store has', async () => {
    const { content, index, paths } = await store()
    const amd = await putImage(content, { layers: ['amd'] })
    const arm = await putImage(content, { layers: ['arm'], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
    const idx = await putIndex(content, [
      { desc: amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
      { desc: arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ])
    await index.set('multi', idx)
    for (const img of [amd, arm]) unpacked(paths, chain(img.diffIds)[0]!)
    const res = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(res).toEqual({ removedBlobs: [], removedLayers: [], removedLinks: [], removedInitLayers: [], reclaimedBytes: 0 })
    await index.delete('multi')
    const all = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(all.removedBlobs.length).toBe(7)
    expect(all.removedLayers.length).toBe(2)
    expect(await checkStore(paths)).toEqual([])
    expect(names(paths.layers)).toEqual([])
    expect(names(paths.links)).toEqual([])
  })
})

/** Bytes in the regular files under a directory. */
function du(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) n += du(p)
    else if (e.isFile()) n += statSync(p).size
  }
  return n
}
