/**
 * Overlay snapshots against the real kernel, as root: layer directories are built by hand
 * (whiteouts with mknod, opaque directories with the trusted.overlay.opaque xattr), snapshots
 * prepared and mounted for real in this process's mount namespace, and every test checks that
 * no mount is left below its store.
 */
import { existsSync, lstatSync, readdirSync, readlinkSync, symlinkSync, writeFileSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mountIn, umount2, spawnPlan, watchExit, pipe, close, CloneFlag, MountFlag, Op } from '@ctr/native'
import { StoreError } from '../src/errors.js'
import type { StorePaths } from '../src/paths.js'
import { Snapshots, recoverSnapshots, overlayMountSteps, MOUNT_DATA_MAX, parseMountinfo } from '../src/snapshots/index.js'
import { listTree, makeLayer, mountsBelow, randomChainId, tempStore } from './helpers/snap-fixtures.js'
import { runScript, transpiledSrc } from './helpers/snap-child.js'

const DIGEST = 'sha256:' + '0'.repeat(64)

let store: ReturnType<typeof tempStore>
let paths: StorePaths
let snaps: Snapshots

beforeEach(() => {
  store = tempStore()
  paths = store.paths
  snaps = new Snapshots(paths)
})

afterEach(() => {
  const left = mountsBelow(store.root)
  store.cleanup()
  expect(left, 'mounts left behind by the test').toEqual([])
})

async function expectStoreError(p: Promise<unknown>, code: string, field?: string): Promise<StoreError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(StoreError)
  expect((err as StoreError).code).toBe(code)
  if (field !== undefined) expect((err as StoreError).field).toBe(field)
  return err as StoreError
}

/** Three layers: a base, one that deletes and replaces, one with an opaque directory. */
function layeredImage(): string[] {
  const base = makeLayer(paths, [
    { path: 'etc', type: 'dir' },
    { path: 'etc/passwd', type: 'file', content: 'root:x:0:0\n' },
    { path: 'etc/motd', type: 'file', content: 'base motd\n' },
    { path: 'etc/conf.d', type: 'dir' },
    { path: 'etc/conf.d/a', type: 'file', content: 'a\n' },
    { path: 'etc/conf.d/b', type: 'file', content: 'b\n' },
    { path: 'bin', type: 'dir' },
    { path: 'bin/sh', type: 'file', content: '#!sh\n', mode: 0o755 },
    { path: 'bin/ash', type: 'symlink', target: 'sh' },
    { path: 'var/cache/old', type: 'file', content: 'old\n' },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ])
  const middle = makeLayer(paths, [
    { path: 'etc/motd', type: 'whiteout' }, // delete
    { path: 'etc/hostname', type: 'file', content: 'box\n' }, // add
    { path: 'bin/sh', type: 'file', content: '#!new sh\n', mode: 0o755 }, // replace
    { path: 'var/cache', type: 'dir', opaque: true }, // replace a directory
    { path: 'var/cache/new', type: 'file', content: 'new\n' },
  ])
  const top = makeLayer(paths, [
    { path: 'etc/conf.d', type: 'dir', opaque: true }, // empty it
    { path: 'etc/conf.d/c', type: 'file', content: 'c\n' },
    { path: 'bin/ash', type: 'whiteout' },
    { path: 'etc/motd', type: 'file', content: 'motd is back\n' }, // re-add over a whiteout
  ])
  return [base, middle, top]
}

const LAYERED_TREE = [
  'bin/ dir',
  'bin/sh file "#!new sh\\n"',
  'etc/ dir',
  'etc/conf.d/ dir',
  'etc/conf.d/c file "c\\n"',
  'etc/hostname file "box\\n"',
  'etc/motd file "motd is back\\n"',
  'etc/passwd file "root:x:0:0\\n"',
  'tmp/ dir',
  'var/ dir',
  'var/cache/ dir',
  'var/cache/new file "new\\n"',
]

describe('prepare', () => {
  it('renders a layered image with deletes and opaque directories exactly', async () => {
    const chainIds = layeredImage()
    const snap = await snaps.prepare({ id: 'c1', image: 'test:latest', manifestDigest: DIGEST, chainIds })
    try {
      expect(snap.mounted).toBe(true)
      expect(snap.rootfs).toBe(join(store.root, 'snapshots/c1/merged'))
      expect(listTree(snap.rootfs)).toEqual(LAYERED_TREE)
      expect(statSync(join(snap.rootfs, 'tmp')).mode & 0o7777).toBe(0o1777)
      expect(mountsBelow(store.root)).toEqual([snap.rootfs])
      // the record, written before the directory got its name
      const record = JSON.parse(readFileSync(paths.snapshotMeta('c1'), 'utf8'))
      expect(record).toMatchObject({ id: 'c1', image: 'test:latest', manifestDigest: DIGEST, chainIds, readonly: false })
      expect(snap.record).toEqual(record)
      // nothing else in snapshots/
      expect(readdirSync(paths.snapshots)).toEqual(['c1'])
      expect(readdirSync(paths.snapshot('c1')).sort()).toEqual(['merged', 'snapshot.json', 'upper', 'work'])
    } finally {
      await snaps.remove('c1')
    }
  })

  it('mounts with short relative lower paths from l/, top layer first, and kernel-independent options', async () => {
    const chainIds = layeredImage()
    const snap = await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds, mount: false })
    const short = chainIds.map((c) => c.slice(7, 19))
    expect(snap.mounted).toBe(false)
    expect(snap.mount).toEqual({
      fstype: 'overlay',
      source: 'overlay',
      target: snap.rootfs,
      cwd: join(store.root, 'l'),
      data: `lowerdir=${short[2]}:${short[1]}:${short[0]},upperdir=../snapshots/c1/upper,workdir=../snapshots/c1/work,index=off,redirect_dir=off,metacopy=off`,
      flags: 0,
    })
    for (const [i, c] of chainIds.entries()) expect(readlinkSync(join(store.root, 'l', short[i]!))).toBe(`../layers/${c.slice(7)}/fs`)
    expect(mountsBelow(store.root)).toEqual([])
    await snaps.remove('c1')
  })

  it('gives the upper root (the container\'s /) the attributes of the top layer\'s root; merged is 0755', async () => {
    const a = makeLayer(paths, [{ path: 'x', type: 'file', content: 'x' }])
    const b = makeLayer(paths, [{ path: 'y', type: 'file', content: 'y' }])
    const { chmodSync, chownSync } = await import('node:fs')
    chmodSync(paths.layerFs(b), 0o750)
    chownSync(paths.layerFs(b), 0, 42)
    const snap = await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: [a, b], mount: false })
    const up = lstatSync(snap.upper!)
    expect([up.mode & 0o7777, up.uid, up.gid]).toEqual([0o750, 0, 42])
    expect(lstatSync(snap.rootfs).mode & 0o7777).toBe(0o755)
    expect(lstatSync(snap.work!).mode & 0o7777).toBe(0o700)
    expect(lstatSync(paths.snapshots).mode & 0o7777).toBe(0o700)
    await snaps.mountSnapshot('c1')
    expect(lstatSync(snap.rootfs).mode & 0o7777).toBe(0o750)
    await snaps.remove('c1')
  })

  it('copy-on-write: writes land in upper, layers stay unchanged, two snapshots of one image are independent', async () => {
    const chainIds = layeredImage()
    const before = chainIds.map((c) => listTree(paths.layerFs(c)))
    const s1 = await snaps.prepare({ id: 's1', image: 'i', manifestDigest: DIGEST, chainIds })
    const s2 = await snaps.prepare({ id: 's2', image: 'i', manifestDigest: DIGEST, chainIds })
    try {
      await writeFile(join(s1.rootfs, 'etc/passwd'), 'changed\n')
      await writeFile(join(s1.rootfs, 'new-file'), 'new\n')
      await rm(join(s1.rootfs, 'etc/hostname'))
      await rm(join(s1.rootfs, 'var'), { recursive: true })
      expect(listTree(s1.upper!)).toEqual([
        'etc/ dir',
        'etc/hostname c 0:0', // whiteout
        'etc/passwd file "changed\\n"',
        'new-file file "new\\n"',
        'var c 0:0',
      ])
      expect(listTree(s2.rootfs)).toEqual(LAYERED_TREE)
      expect(listTree(s2.upper!)).toEqual([])
      expect(readFileSync(join(s2.rootfs, 'etc/passwd'), 'utf8')).toBe('root:x:0:0\n')
      expect(chainIds.map((c) => listTree(paths.layerFs(c)))).toEqual(before)
    } finally {
      await snaps.remove('s1')
      await snaps.remove('s2')
    }
  })

  it('a read-only snapshot has no upper directory and refuses writes with EROFS (1 layer and 3)', async () => {
    const one = makeLayer(paths, [{ path: 'f', type: 'file', content: 'one\n' }])
    const r1 = await snaps.prepare({ id: 'r1', image: 'i', manifestDigest: DIGEST, chainIds: [one], readonly: true })
    const r3 = await snaps.prepare({ id: 'r3', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage(), readonly: true })
    try {
      expect([r1.upper, r1.work, r1.readonly]).toEqual([null, null, true])
      expect(r1.mount.flags).toBe(MountFlag.RDONLY)
      // overlay needs two lowers without an upper: a single-layer image gets an empty one below
      expect(r1.mount.data).toBe(`lowerdir=${one.slice(7, 19)}:../snapshots/r1/empty,index=off,redirect_dir=off,metacopy=off`)
      expect(listTree(r1.rootfs)).toEqual(['f file "one\\n"'])
      expect(listTree(r3.rootfs)).toEqual(LAYERED_TREE)
      for (const s of [r1, r3]) {
        await expect(writeFile(join(s.rootfs, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
        await expect(writeFile(join(s.rootfs, s === r1 ? 'f' : 'etc/passwd'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
      }
      expect(readdirSync(paths.snapshot('r3')).sort()).toEqual(['merged', 'snapshot.json'])
    } finally {
      await snaps.remove('r1')
      await snaps.remove('r3')
    }
  })

  it('an image with no layers mounts as an empty root file system', async () => {
    const snap = await snaps.prepare({ id: 'e', image: 'scratch', manifestDigest: DIGEST, chainIds: [] })
    try {
      expect(listTree(snap.rootfs)).toEqual([])
      await writeFile(join(snap.rootfs, 'f'), 'x')
      expect(listTree(snap.upper!)).toEqual(['f file "x"'])
    } finally {
      await snaps.remove('e')
    }
  })

  it('mounts a 130-layer image (the top layer wins), with options under one page', async () => {
    const chainIds: string[] = []
    for (let i = 0; i < 130; i++) {
      chainIds.push(makeLayer(paths, [{ path: 'which', type: 'file', content: `layer ${i}\n` }, { path: `only/${i}`, type: 'file', content: `${i}` }]))
    }
    const t0 = performance.now()
    const snap = await snaps.prepare({ id: 'deep', image: 'i', manifestDigest: DIGEST, chainIds })
    const ms = performance.now() - t0
    try {
      expect(readFileSync(join(snap.rootfs, 'which'), 'utf8')).toBe('layer 129\n')
      expect(readdirSync(join(snap.rootfs, 'only')).length).toBe(130)
      expect(Buffer.byteLength(snap.mount.data)).toBeLessThanOrEqual(MOUNT_DATA_MAX)
      // absolute lower paths would not have fit
      expect(chainIds.map((c) => paths.layerFs(c)).join(':').length).toBeGreaterThan(4096)
      console.log(`prepare of a 130-layer image: ${ms.toFixed(1)} ms`)
    } finally {
      await snaps.remove('deep')
    }
  })

  it('refuses an image too deep even for short links with ERR_STORE_MOUNT naming the layer count, leaving nothing', async () => {
    const chainIds = Array.from({ length: 320 }, () => makeLayer(paths, []))
    const err = await expectStoreError(snaps.prepare({ id: 'deeper', image: 'i', manifestDigest: DIGEST, chainIds }), 'ERR_STORE_MOUNT')
    expect(err.message).toMatch(/320 layers/)
    expect(err.message).toMatch(/4095-byte limit/)
    expect(readdirSync(paths.snapshots)).toEqual([])
  })

  it('lengthens a short id that collides with a link to another layer', async () => {
    const chainId = randomChainId()
    const hex = chainId.slice(7)
    mkdirSync(paths.links, { recursive: true })
    symlinkSync('../layers/someone-else/fs', join(paths.links, hex.slice(0, 12)))
    makeLayer(paths, [{ path: 'f', type: 'file', content: 'mine' }], chainId)
    const snap = await snaps.prepare({ id: 'c', image: 'i', manifestDigest: DIGEST, chainIds: [chainId] })
    try {
      expect(snap.mount.data.startsWith(`lowerdir=${hex.slice(0, 16)},`)).toBe(true)
      expect(readFileSync(join(snap.rootfs, 'f'), 'utf8')).toBe('mine')
      // a second prepare reuses the links as they are
      const again = await snaps.prepare({ id: 'd', image: 'i', manifestDigest: DIGEST, chainIds: [chainId], mount: false })
      expect(again.mount.data.startsWith(`lowerdir=${hex.slice(0, 16)},`)).toBe(true)
    } finally {
      await snaps.remove('c')
      await snaps.remove('d')
    }
  })

  it('validates: bad ids (ERR_STORE_INVALID, field id), taken ids (ERR_STORE_EXISTS), missing layers (ERR_STORE_NOT_FOUND)', async () => {
    const layer = makeLayer(paths, [{ path: 'f', type: 'file' }])
    for (const id of ['', '-x', '.hidden', 'a/b', '..', 'x'.repeat(129), 'a b', 'é']) {
      await expectStoreError(snaps.prepare({ id, image: 'i', manifestDigest: DIGEST, chainIds: [layer] }), 'ERR_STORE_INVALID', 'id')
    }
    await expectStoreError(snaps.prepare({ id: 'ok', image: 'i', manifestDigest: DIGEST, chainIds: ['sha256:nope'] }), 'ERR_STORE_INVALID', 'chainIds.0')
    expect(existsSync(paths.snapshots)).toBe(false)

    await snaps.prepare({ id: 'x'.repeat(128), image: 'i', manifestDigest: DIGEST, chainIds: [layer], mount: false })
    await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: [layer] })
    await expectStoreError(snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: [layer] }), 'ERR_STORE_EXISTS')
    // concurrent prepares of one id: exactly one wins
    const results = await Promise.allSettled([1, 2, 3].map(() => snaps.prepare({ id: 'race', image: 'i', manifestDigest: DIGEST, chainIds: [layer] })))
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1)
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['ERR_STORE_EXISTS', 'ERR_STORE_EXISTS'])

    const missing = randomChainId()
    const err = await expectStoreError(snaps.prepare({ id: 'c2', image: 'i', manifestDigest: DIGEST, chainIds: [layer, missing] }), 'ERR_STORE_NOT_FOUND')
    expect(err.digest).toBe(missing)
    expect(readdirSync(paths.snapshots).sort()).toEqual(['c1', 'race', 'x'.repeat(128)])
    for (const id of ['c1', 'race', 'x'.repeat(128)]) await snaps.remove(id)
  })

  it('a layer that is not a directory, or a mount(2) that fails, leaves nothing behind (no directory, no mount)', async () => {
    const layer = makeLayer(paths, [{ path: 'f', type: 'file' }])
    const bad = randomChainId()
    mkdirSync(paths.layer(bad), { recursive: true })
    writeFileSync(paths.layerFs(bad), 'not a dir')
    const err = await expectStoreError(snaps.prepare({ id: 'c', image: 'i', manifestDigest: DIGEST, chainIds: [layer, bad] }), 'ERR_STORE_NOT_FOUND')
    expect(err.digest).toBe(bad)
    // the kernel refuses one layer twice ("conflicting lowerdir path", ELOOP): a real mount(2)
    // failure after the directory was renamed into place
    const err2 = await expectStoreError(snaps.prepare({ id: 'c', image: 'i', manifestDigest: DIGEST, chainIds: [layer, layer] }), 'ERR_STORE_MOUNT')
    expect(err2.message).toMatch(/^mount snapshot c on .*merged`: ELOOP/)
    expect(readdirSync(paths.snapshots)).toEqual([])
    expect(mountsBelow(store.root)).toEqual([])
  })
})

describe('get, list, mountSnapshot, unmount', () => {
  it('tracks the mount state from /proc/self/mountinfo, and mounts and unmounts idempotently', async () => {
    const chainIds = layeredImage()
    await snaps.prepare({ id: 'a', image: 'img-a', manifestDigest: DIGEST, chainIds })
    await snaps.prepare({ id: 'b', image: 'img-b', manifestDigest: DIGEST, chainIds, readonly: true, mount: false })
    try {
      expect((await snaps.list()).map((s) => [s.id, s.record.image, s.mounted, s.readonly])).toEqual([
        ['a', 'img-a', true, false],
        ['b', 'img-b', false, true],
      ])
      await expectStoreError(snaps.get('nope'), 'ERR_STORE_NOT_FOUND')
      await expectStoreError(snaps.get('../x'), 'ERR_STORE_INVALID', 'id')
      await snaps.unmount('a')
      await snaps.unmount('a')
      expect((await snaps.get('a')).mounted).toBe(false)
      expect(mountsBelow(store.root)).toEqual([])
      const a = await snaps.mountSnapshot('a')
      expect(a.mounted).toBe(true)
      await snaps.mountSnapshot('a') // already mounted: no second mount on top
      expect(mountsBelow(store.root)).toEqual([a.rootfs])
      expect(listTree(a.rootfs)).toEqual(LAYERED_TREE)
      const b = await snaps.mountSnapshot('b')
      expect(listTree(b.rootfs)).toEqual(LAYERED_TREE)
      expect((await snaps.get('b')).mounted).toBe(true)
      await expectStoreError(snaps.unmount('nope'), 'ERR_STORE_NOT_FOUND')
    } finally {
      await snaps.remove('a')
      await snaps.remove('b')
    }
    expect(await snaps.list()).toEqual([])
  })

  it('mountSnapshot names a layer that went away (ERR_STORE_NOT_FOUND) instead of failing in mount(2)', async () => {
    const chainIds = layeredImage()
    await snaps.prepare({ id: 'c', image: 'i', manifestDigest: DIGEST, chainIds, mount: false })
    await rm(paths.layer(chainIds[1]!), { recursive: true })
    const err = await expectStoreError(snaps.mountSnapshot('c'), 'ERR_STORE_NOT_FOUND')
    expect(err.digest).toBe(chainIds[1])
    expect(mountsBelow(store.root)).toEqual([])
    await snaps.remove('c')
  })

  it('unmount detaches a busy mount and anything mounted below it', async () => {
    const snap = await snaps.prepare({ id: 'busy', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage() })
    const { openSync, closeSync } = await import('node:fs')
    const fd = openSync(join(snap.rootfs, 'etc/passwd'), 'r') // makes a plain umount EBUSY
    try {
      mountIn('/', 'tmpfs', join(snap.rootfs, 'tmp'), 'tmpfs', 0, 'size=1m') // a submount
      expect(mountsBelow(store.root).length).toBe(2)
      await snaps.unmount('busy')
      expect(mountsBelow(store.root)).toEqual([])
    } finally {
      closeSync(fd)
      await snaps.remove('busy')
    }
  })

  it('the mount spec mounts inside a new mount namespace through spawn-plan steps', async () => {
    const snap = await snaps.prepare({ id: 'ns', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage(), mount: false })
    const [r, w] = pipe()
    const { pid, pidfd } = await spawnPlan({
      cloneFlags: CloneFlag.NEWNS,
      joins: [],
      twoStage: false,
      parentWrites: [],
      fds: [
        { source: w, target: 1 },
        { source: 2, target: 2 },
      ],
      steps: [{ op: Op.Mount, s: [null, '/', null, null], n: [MountFlag.REC | MountFlag.PRIVATE] }, ...overlayMountSteps(snap.mount)],
      exec: { path: 'cat', argv: ['cat', join(snap.rootfs, 'etc/motd'), join(snap.rootfs, 'bin/sh')], env: [], search: '/usr/bin:/bin' },
    })
    close(w)
    const exited = new Promise<number | null>((res) => watchExit(pidfd, (code) => res(code)))
    const { createReadStream } = await import('node:fs')
    let out = ''
    for await (const chunk of createReadStream('', { fd: r })) out += chunk
    expect(await exited).toBe(0)
    expect(pid).toBeGreaterThan(0)
    expect(out).toBe('motd is back\n#!new sh\n')
    // not mounted here: only in the child's namespace, which died with it
    expect(mountsBelow(store.root)).toEqual([])
    await snaps.remove('ns')
  })
})

describe('volatile prepare (one native job)', () => {
  it('two stores preparing one id at once: one wins, the other gets ERR_STORE_EXISTS, and no temporary is left', async () => {
    const chainIds = layeredImage()
    const other = new Snapshots(paths)
    const results = await Promise.allSettled([
      snaps.prepare({ id: 'same', image: 'i', manifestDigest: DIGEST, chainIds, mount: false, volatile: true }),
      other.prepare({ id: 'same', image: 'i', manifestDigest: DIGEST, chainIds, mount: false, volatile: true }),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!.reason
    expect(failure).toBeInstanceOf(StoreError)
    expect((failure as StoreError).code).toBe('ERR_STORE_EXISTS')
    expect(readdirSync(paths.snapshots)).toEqual(['same'])
    expect(readdirSync(paths.snapshot('same')).sort()).toEqual(['merged', 'snapshot.json', 'upper', 'work'])
    expect(JSON.parse(readFileSync(paths.snapshotMeta('same'), 'utf8'))).toMatchObject({ id: 'same', volatile: true })
    await snaps.remove('same')
  })

  it('a failing step is a typed error naming its path, and nothing is left', async () => {
    writeFileSync(paths.snapshots, 'not a directory')
    const err = await expectStoreError(snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage(), mount: false, volatile: true }), 'ERR_STORE_IO')
    expect(err.message).toContain('EEXIST')
    expect(err.path).toBe(paths.snapshots)
    expect(readFileSync(paths.snapshots, 'utf8')).toBe('not a directory')
  })
})

describe('remove and recovery', () => {
  it('remove is idempotent, and removing a never-created id is fine', async () => {
    const snap = await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage() })
    await writeFile(join(snap.rootfs, 'data'), 'x')
    await snaps.remove('c1')
    await snaps.remove('c1')
    await snaps.remove('never')
    expect(existsSync(paths.snapshot('c1'))).toBe(false)
    expect(readdirSync(paths.snapshots)).toEqual([])
    await expectStoreError(snaps.remove('a/b'), 'ERR_STORE_INVALID', 'id')
  })

  it('removes an unmounted snapshot with a mount somewhere below it: the removal finds it, unmounts it, and goes on', async () => {
    await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage(), mount: false })
    const target = join(paths.snapshot('c1'), 'upper')
    mountIn('/', 'tmpfs', target, 'tmpfs', 0, 'size=64k')
    try {
      writeFileSync(join(target, 'inside-the-tmpfs'), 'x')
      await snaps.remove('c1')
      expect(readdirSync(paths.snapshots)).toEqual([])
      expect(mountsBelow(store.root)).toEqual([])
    } finally {
      if (mountsBelow(store.root).length > 0) umount2(mountsBelow(store.root)[0]!, 2)
    }
  })

  it('removes a snapshot whose mount is gone (unmounted behind its back)', async () => {
    const snap = await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds: layeredImage() })
    umount2(snap.rootfs, 0)
    expect((await snaps.get('c1')).mounted).toBe(false)
    await snaps.remove('c1')
    expect(readdirSync(paths.snapshots)).toEqual([])
  })

  it('removes a snapshot still mounted by a process killed with SIGKILL, and recovers a prepare killed half-way', async () => {
    const built = transpiledSrc()
    try {
      const layers = layeredImage()
      const script = `
        import { Snapshots } from './snapshots/index.js'
        import { StorePaths } from './paths.js'
        const s = new Snapshots(new StorePaths(${JSON.stringify(store.root)}))
        const snap = await s.prepare({ id: 'crashed', image: 'i', manifestDigest: ${JSON.stringify(DIGEST)}, chainIds: ${JSON.stringify(layers)} })
        await (await import('node:fs/promises')).writeFile(snap.rootfs + '/written-by-child', 'hi')
        console.log('ready')
        setInterval(() => {}, 1000)
      `
      const { exited } = runScript(built.dir, script, (line, child) => {
        if (line === 'ready') child.kill('SIGKILL')
      })
      const res = await exited
      expect(res.signal, res.stderr).toBe('SIGKILL')
      // the mount outlived its creator
      expect(mountsBelow(store.root)).toEqual([join(store.root, 'snapshots/crashed/merged')])
      const got = await snaps.get('crashed')
      expect(got.mounted).toBe(true)
      expect(readFileSync(join(got.upper!, 'written-by-child'), 'utf8')).toBe('hi')
      await snaps.remove('crashed')
      expect(mountsBelow(store.root)).toEqual([])
      expect(readdirSync(paths.snapshots)).toEqual([])

      // A prepare killed between creating its temporary directory and renaming it into place,
      // and a removal killed between its rename and its rm: each leaves only a .tmp-<pid>-…
      // directory. recoverSnapshots removes those of dead processes and keeps those of live ones.
      const killAt = (fn: 'rename' | 'open', when: string, body: string) => `
        import fs from 'node:fs'
        import { syncBuiltinESMExports } from 'node:module'
        const real = fs.promises.${fn}
        fs.promises.${fn} = async (...args) => {
          if (${when}) process.kill(process.pid, 'SIGKILL')
          return real(...args)
        }
        syncBuiltinESMExports()
        const { Snapshots } = await import('./snapshots/index.js')
        const { StorePaths } = await import('./paths.js')
        const s = new Snapshots(new StorePaths(${JSON.stringify(store.root)}))
        ${body}
      `
      const r2 = await runScript(
        built.dir,
        killAt('rename', `String(args[1]).endsWith('/snapshots/half')`, `await s.prepare({ id: 'half', image: 'i', manifestDigest: ${JSON.stringify(DIGEST)}, chainIds: ${JSON.stringify(layers)} })`),
      ).exited
      expect(r2.signal, r2.stderr).toBe('SIGKILL')
      expect(existsSync(paths.snapshot('half'))).toBe(false)
      await snaps.prepare({ id: 'doomed', image: 'i', manifestDigest: DIGEST, chainIds: layers })
      // Killed at the fsync of the snapshots directory, which comes between the rename and the rm.
      const r3 = await runScript(built.dir, killAt('open', `String(args[0]).endsWith('/snapshots')`, `await s.remove('doomed')`)).exited
      expect(r3.signal, r3.stderr).toBe('SIGKILL')
      expect(existsSync(paths.snapshot('doomed'))).toBe(false) // gone from its id at once
      expect(mountsBelow(store.root)).toEqual([])
      const names = readdirSync(paths.snapshots).sort()
      expect(names.length).toBe(2)
      expect(names[0]).toMatch(/^\.tmp-\d+-new-half-[0-9a-f]+$/)
      expect(names[1]).toMatch(/^\.tmp-\d+-rm-doomed-[0-9a-f]+$/)
      mkdirSync(join(paths.snapshots, `.tmp-${process.pid}-new-live-0001/merged`), { recursive: true })
      mkdirSync(join(paths.snapshots, '.tmp-999999999-rm-dead-0001/upper/x'), { recursive: true })
      const removed = await recoverSnapshots(paths)
      expect(removed.sort()).toEqual([...names, '.tmp-999999999-rm-dead-0001'].sort())
      expect(readdirSync(paths.snapshots)).toEqual([`.tmp-${process.pid}-new-live-0001`])
      await rm(join(paths.snapshots, `.tmp-${process.pid}-new-live-0001`), { recursive: true })
    } finally {
      built.cleanup()
    }
  })

  it('recoverSnapshots unmounts before deleting a temporary that still has a mount below it', async () => {
    const layer = makeLayer(paths, [{ path: 'precious', type: 'file', content: 'keep me' }])
    const tmp = join(store.root, 'snapshots', '.tmp-999999998-rm-x-0001')
    mkdirSync(join(tmp, 'merged'), { recursive: true })
    mountIn('/', paths.layerFs(layer), join(tmp, 'merged'), null, MountFlag.BIND, null)
    expect(await recoverSnapshots(paths)).toEqual(['.tmp-999999998-rm-x-0001'])
    expect(mountsBelow(store.root)).toEqual([])
    // rm did not walk into the bind mount
    expect(readFileSync(join(paths.layerFs(layer), 'precious'), 'utf8')).toBe('keep me')
  })
})

describe('parseMountinfo', () => {
  it('decodes escaped mount points and finds the fields after the separator', () => {
    const [e] = parseMountinfo('66 43 0:39 / /tmp/a\\040b rw,relatime shared:5 master:1 - overlay overlay rw,lowerdir=x:y\n')
    expect(e).toEqual({ id: 66, parent: 43, mountPoint: '/tmp/a b', options: 'rw,relatime', fstype: 'overlay', source: 'overlay', superOptions: 'rw,lowerdir=x:y' })
  })
})
