/**
 * The ImageStore facade end to end, as root: the snippet as written; a layered image
 * with deletes and opaque directories rendered exactly; copy-on-write between two snapshots;
 * two images sharing a layer unpack it once; commit → push → pull → prepare gives the same
 * files; untag and gc; and a store that reopens cleanly.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RegistryClient } from '@ctr/registry-client'
import { sharedFixtures, startRegistry, type Fixtures, type Registry } from '@ctr/registry-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ImageStore, StoreError } from '../src/index.js'

let dir: string
let fixtures: Fixtures
let registry: Registry

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-store-e2e-'))
  fixtures = await sharedFixtures()
  registry = await startRegistry()
})

afterAll(async () => {
  await registry?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Every path under a directory with its type, mode, owner and content hash (or link target). */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = path.join(rel, name)
      const st = fs.lstatSync(path.join(root, r))
      const common = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`
      if (st.isDirectory()) {
        out[r] = `dir ${common}`
        walk(r)
      } else if (st.isSymbolicLink()) out[r] = `link ${fs.readlinkSync(path.join(root, r))}`
      else if (st.isFile()) out[r] = `file ${common} ${createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex').slice(0, 16)}`
      else out[r] = `special ${common} ${st.rdev}`
    }
  }
  walk('')
  return out
}

describe('the issue snippet, as written', () => {
  it('importLayout, prepare, write, commit, remove', async () => {
    const bb = fixtures.images.busybox
    const store = await ImageStore.open(path.join(dir, 'snippet'))
    await store.importLayout(bb.layoutDir, { name: bb.refName, ref: 'busybox:latest' })
    // …and with the ref as the second argument, when the layout has one image name:
    const single = path.join(dir, 'single-layout')
    await store.exportLayout('busybox:latest', single, { name: 'latest' })
    await store.importLayout(single, 'busybox:latest')
    const snap = await store.prepare('busybox:latest', 'c1')
    try {
      expect(snap.mounted).toBe(true)
      expect(fs.existsSync(path.join(snap.rootfs, 'bin', 'busybox'))).toBe(true)
      fs.writeFileSync(path.join(snap.rootfs, 'hello.txt'), 'written in c1\n')
      const image = await store.commit('c1', { ref: 'mine/busybox:v2' })
      expect(image.ref).toBe('docker.io/mine/busybox:v2')
      const inspected = await store.inspect('mine/busybox:v2')
      expect(inspected.diffIds).toHaveLength(2)
      expect(inspected.diffIds[1]).toBe(image.diffId)
    } finally {
      await store.remove('c1')
    }
    expect(fs.existsSync(snap.rootfs)).toBe(false)
    await store.remove('c1') // idempotent
  })
})

describe('layers and snapshots', () => {
  let store: ImageStore
  beforeAll(async () => {
    store = await ImageStore.open(path.join(dir, 'layers'))
    const { layers, busybox, dockerImage } = fixtures.images
    await store.importLayout(layers.layoutDir, { name: layers.refName })
    await store.importLayout(busybox.layoutDir, { name: busybox.refName })
    await store.importLayout(dockerImage.layoutDir, { name: dockerImage.refName })
  })

  it('a layered image with a whiteout, an opaque directory, a hardlink and symlinks renders exactly', async () => {
    const snap = await store.prepare(fixtures.images.layers.refName, 'render', { readonly: true })
    try {
      const t = tree(snap.rootfs)
      // What the fixture's second layer does (tools/registry-harness/src/fixtures.ts).
      expect(Object.values(t).some((v) => v.startsWith('special'))).toBe(false) // no whiteout device shows through
      const unpacked = await store.unpack(fixtures.images.layers.refName)
      expect(unpacked.chainIds).toHaveLength(2)
      // The merged view equals applying the layers with overlay semantics by hand: compare
      // with a GNU tar extraction of both layers into one directory, whiteouts applied.
      const manual = path.join(dir, 'manual')
      fs.mkdirSync(manual)
      for (const l of unpacked.image.manifest.layers) {
        const blob = store.content.path(l.digest)
        const list = fs.mkdtempSync(path.join(dir, 'x-'))
        await import('node:child_process').then(({ execFileSync }) => execFileSync('tar', ['-xzf', blob, '-C', list, '--numeric-owner']))
        applyLayer(list, manual)
        fs.rmSync(list, { recursive: true, force: true })
      }
      expect(t).toEqual(tree(manual))
    } finally {
      await store.remove('render')
    }
  })

  it('copy-on-write: writes land in the upper dir, layers stay unchanged, two snapshots are independent', async () => {
    const ref = fixtures.images.busybox.refName
    const a = await store.prepare(ref, 'cow-a')
    const b = await store.prepare(ref, 'cow-b')
    try {
      const { chainIds } = await store.unpack(ref)
      const layerDir = store.paths.layerFs(chainIds[0]!)
      const before = tree(layerDir)
      fs.writeFileSync(path.join(a.rootfs, 'etc', 'passwd'), 'changed in a\n')
      fs.rmSync(path.join(a.rootfs, 'bin', 'ls'))
      expect(fs.readFileSync(path.join(a.upper!, 'etc', 'passwd'), 'utf8')).toBe('changed in a\n')
      expect(fs.readFileSync(path.join(b.rootfs, 'etc', 'passwd'), 'utf8')).toMatch(/^root:x:0:0/)
      expect(fs.existsSync(path.join(b.rootfs, 'bin', 'ls'))).toBe(true)
      expect(tree(layerDir)).toEqual(before)
    } finally {
      await store.remove('cow-a')
      await store.remove('cow-b')
    }
  })

  it('two images that share a layer unpack it once', async () => {
    // `busybox` (OCI) and `dockerImage` (Docker schema 2) carry the same gzip layer blob.
    const one = await store.unpack(fixtures.images.busybox.refName)
    const two = await store.unpack(fixtures.images.dockerImage.refName)
    expect(one.chainIds).toEqual(two.chainIds)
    const dirs = fs.readdirSync(store.paths.layers).filter((n) => /^[0-9a-f]{64}$/.test(n))
    expect(dirs.filter((d) => d === one.chainIds[0]!.split(':')[1])).toHaveLength(1)
    const ino = fs.statSync(store.paths.layerFs(one.chainIds[0]!)).ino
    await store.unpack(fixtures.images.busybox.refName)
    expect(fs.statSync(store.paths.layerFs(one.chainIds[0]!)).ino).toBe(ino)
  })

  it('untag refuses an image a snapshot uses; gc keeps what is referenced and removes the rest', async () => {
    const ref = fixtures.images.layers.refName
    const snap = await store.prepare(ref, 'gc-user')
    await expect(store.untag(ref)).rejects.toMatchObject({ code: 'ERR_STORE_IN_USE' })
    await store.untag(ref, { force: true })
    let r = await store.gc({ graceMs: 0 })
    // The snapshot still holds its layers.
    const { chainIds } = snap.record
    for (const c of chainIds) expect(fs.existsSync(store.paths.layer(c))).toBe(true)
    await store.remove('gc-user')
    r = await store.gc({ graceMs: 0 })
    expect(r.removedLayers.length).toBeGreaterThan(0)
    for (const c of chainIds.slice(1)) expect(fs.existsSync(store.paths.layer(c))).toBe(false)
    await expect(store.inspect(ref)).rejects.toBeInstanceOf(StoreError)
  })
})

describe('commit → push → pull → prepare', () => {
  it('gives the same files', async () => {
    const src = await ImageStore.open(path.join(dir, 'src'))
    await src.importLayout(fixtures.images.busybox.layoutDir, { name: fixtures.images.busybox.refName, ref: 'busybox:latest' })
    const snap = await src.prepare('busybox:latest', 'work')
    let expected: Record<string, string>
    try {
      fs.mkdirSync(path.join(snap.rootfs, 'app'))
      fs.writeFileSync(path.join(snap.rootfs, 'app', 'data.bin'), Buffer.alloc(70_000, 7))
      fs.symlinkSync('/app/data.bin', path.join(snap.rootfs, 'app', 'link'))
      fs.rmSync(path.join(snap.rootfs, 'bin', 'vi'))
      fs.writeFileSync(path.join(snap.rootfs, 'etc', 'motd'), 'committed\n')
      expected = tree(snap.rootfs)
      await src.commit('work', { ref: 'mine/app:1', compression: 'zstd' })
    } finally {
      await src.remove('work')
    }
    const client = new RegistryClient({ insecure: [registry.host] })
    const target = `${registry.host}/mine/app:1`
    await client.push(src, 'mine/app:1', target)
    const dst = await ImageStore.open(path.join(dir, 'dst'))
    await client.pull(target, { into: dst })
    const pulled = await dst.prepare(target, 'check', { readonly: true })
    try {
      expect(tree(pulled.rootfs)).toEqual(expected)
      expect(fs.existsSync(path.join(pulled.rootfs, 'bin', 'vi'))).toBe(false)
    } finally {
      await dst.remove('check')
    }
  })
})

describe('open after a crash', () => {
  it('a store with leftovers of dead processes opens cleanly and removes them', async () => {
    const root = path.join(dir, 'crashy')
    const store = await ImageStore.open(root)
    await store.importLayout(fixtures.images.busybox.layoutDir, { name: fixtures.images.busybox.refName, ref: 'bb:1' })
    // Temporaries named for a pid that cannot be alive (pid_max is below 2^22 + 1).
    const deadPid = 4_194_305
    fs.mkdirSync(path.join(root, 'layers', `.tmp-${deadPid}-abcd`), { recursive: true })
    fs.writeFileSync(path.join(root, 'tmp', `.tmp-${deadPid}-ffff-ingest`), 'partial')
    fs.mkdirSync(path.join(root, 'snapshots', `.tmp-${deadPid}-rm-x`), { recursive: true })
    const again = await ImageStore.open(root)
    expect(fs.readdirSync(path.join(root, 'layers')).filter((n) => n.startsWith('.tmp-'))).toEqual([])
    expect(fs.readdirSync(path.join(root, 'tmp'))).toEqual([])
    expect(fs.readdirSync(path.join(root, 'snapshots')).filter((n) => n.startsWith('.tmp-'))).toEqual([])
    expect((await again.images()).map((i) => i.ref)).toEqual(['docker.io/library/bb:1'])
  })
})

/** Applies an extracted OCI layer (with `.wh.` files) onto `dest` the way overlay shows it. */
function applyLayer(src: string, dest: string): void {
  const walk = (rel: string) => {
    const names = fs.readdirSync(path.join(src, rel)).sort()
    if (names.includes('.wh..wh..opq')) {
      for (const n of fs.readdirSync(path.join(dest, rel))) fs.rmSync(path.join(dest, rel, n), { recursive: true, force: true })
    }
    for (const name of names) {
      if (name === '.wh..wh..opq') continue
      const from = path.join(src, rel, name)
      if (name.startsWith('.wh.')) {
        fs.rmSync(path.join(dest, rel, name.slice(4)), { recursive: true, force: true })
        continue
      }
      const to = path.join(dest, rel, name)
      const st = fs.lstatSync(from)
      if (st.isDirectory()) {
        if (fs.existsSync(to) && !fs.lstatSync(to).isDirectory()) fs.rmSync(to, { force: true })
        if (!fs.existsSync(to)) fs.mkdirSync(to)
        fs.chmodSync(to, st.mode & 0o7777)
        fs.lchownSync(to, st.uid, st.gid)
        walk(path.join(rel, name))
      } else {
        fs.rmSync(to, { recursive: true, force: true })
        if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to)
        else {
          fs.copyFileSync(from, to)
          fs.chmodSync(to, st.mode & 0o7777)
        }
        fs.lchownSync(to, st.uid, st.gid)
      }
    }
  }
  walk('')
}
