/**
 * Init layers: the mount points an image lacks, made once per image as a read-only layer on
 * top of it, so containers do not create them in their own upper directories. What the image
 * has is left alone (whiteouts and opaque directories decide, as overlay does); the layer's
 * directories copy the image's attributes; snapshots share one layer; garbage collection
 * removes a layer no snapshot uses; bad targets are refused before anything is made.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ContentStore } from '../src/content/store.js'
import { StoreError } from '../src/errors.js'
import { collectGarbage } from '../src/gc.js'
import { ImageIndex } from '../src/images/index-file.js'
import type { StorePaths } from '../src/paths.js'
import { Snapshots, type MountTarget } from '../src/snapshots/index.js'
import { listTree, makeLayer, mountsBelow, tempStore } from './helpers/snap-fixtures.js'

const DIGEST = 'sha256:' + '0'.repeat(64)
const TARGETS: MountTarget[] = [
  { path: '/etc/hostname', type: 'file', mode: 0o644 },
  { path: '/etc/hosts', type: 'file', mode: 0o644 },
  { path: '/proc', type: 'directory', mode: 0o555 },
  { path: '/dev', type: 'directory' },
]

let store: ReturnType<typeof tempStore>
let paths: StorePaths
let snaps: Snapshots

beforeEach(() => {
  store = tempStore('ctr-init-')
  paths = store.paths
  snaps = new Snapshots(paths)
})

afterEach(() => {
  const left = mountsBelow(store.root)
  store.cleanup()
  expect(left, 'mounts left behind by the test').toEqual([])
})

/** An image with /etc 0750 owned by 7:8 holding hosts; /dev whited out by its top layer; no /proc. */
function image(): string[] {
  const base = makeLayer(paths, [
    { path: 'etc', type: 'dir', mode: 0o750, uid: 7, gid: 8 },
    { path: 'etc/hosts', type: 'file', content: 'image hosts\n' },
    { path: 'dev', type: 'dir' },
    { path: 'bin', type: 'dir' },
  ])
  const top = makeLayer(paths, [{ path: 'dev', type: 'whiteout' }])
  return [base, top]
}

describe('init layers', () => {
  it('provide what the image lacks, leave what it has, and keep the upper directory empty', async () => {
    const chainIds = image()
    const snap = await snaps.prepare({ id: 'c1', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS })
    try {
      const key = snap.record.initLayer!
      expect(key).toMatch(/^[0-9a-f]{64}$/)
      // hostname (missing), /proc (missing), /dev (whited out above the base's) — not hosts
      expect(listTree(paths.initLayer(key))).toEqual(['dev/ dir', 'etc/ dir', 'etc/hostname file ""', 'proc/ dir'])
      expect(statSync(join(paths.initLayer(key), 'proc')).mode & 0o7777).toBe(0o555)
      // the layer's /etc stands for the image's: same owner and mode in the merged view
      const etc = statSync(join(snap.rootfs, 'etc'))
      expect([etc.uid, etc.gid, etc.mode & 0o7777]).toEqual([7, 8, 0o750])
      expect(readFileSync(join(snap.rootfs, 'etc/hosts'), 'utf8')).toBe('image hosts\n')
      expect(readFileSync(join(snap.rootfs, 'etc/hostname'), 'utf8')).toBe('')
      expect(statSync(join(snap.rootfs, 'dev')).isDirectory()).toBe(true)
      expect(readdirSync(join(paths.snapshot('c1'), 'upper'))).toEqual([])
      // the lower path is relative to l/, like the layers' short links, and on top
      expect(snap.mount.data).toMatch(new RegExp(`^lowerdir=\\.\\./init/${key}:`))
    } finally {
      await snaps.remove('c1')
    }
  })

  it('is shared by every snapshot of the image; another image, or other targets, get their own', async () => {
    const chainIds = image()
    const a = await snaps.prepare({ id: 'a', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS, mount: false })
    const b = await snaps.prepare({ id: 'b', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS, mount: false })
    const c = await snaps.prepare({ id: 'c', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS.slice(0, 1), mount: false })
    expect(b.record.initLayer).toBe(a.record.initLayer)
    expect(c.record.initLayer).not.toBe(a.record.initLayer)
    expect(readdirSync(paths.initLayers).sort()).toEqual([a.record.initLayer, c.record.initLayer].sort())
    for (const id of ['a', 'b', 'c']) await snaps.remove(id)
  })

  it('is not made when the image has every target, and an opaque directory hides what lower layers have', async () => {
    const full = makeLayer(paths, [{ path: 'etc/hostname', type: 'file' }, { path: 'etc/hosts', type: 'file' }, { path: 'proc', type: 'dir' }, { path: 'dev', type: 'dir' }])
    const snap = await snaps.prepare({ id: 'full', image: 'i', manifestDigest: DIGEST, chainIds: [full], mountTargets: TARGETS, mount: false })
    expect(snap.record.initLayer).toBeUndefined()
    expect(existsSync(paths.initLayers) ? readdirSync(paths.initLayers) : []).toEqual([])
    await snaps.remove('full')

    const opaque = makeLayer(paths, [{ path: 'etc', type: 'dir', opaque: true }, { path: 'etc/hosts', type: 'file' }])
    const hidden = await snaps.prepare({ id: 'hidden', image: 'i', manifestDigest: DIGEST, chainIds: [full, opaque], mountTargets: TARGETS, mount: false })
    expect(listTree(paths.initLayer(hidden.record.initLayer!))).toEqual(['etc/ dir', 'etc/hostname file ""'])
    await snaps.remove('hidden')
  })

  it('garbage collection removes an init layer no snapshot uses, and keeps one in use', async () => {
    const chainIds = image()
    const a = await snaps.prepare({ id: 'a', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS, mount: false })
    const other = await snaps.prepare({ id: 'b', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: TARGETS.slice(1), mount: false })
    await snaps.remove('b')
    const content = await ContentStore.open(paths)
    const index = await ImageIndex.load(paths)
    const dry = await collectGarbage(paths, content, index, { graceMs: 0, dryRun: true })
    expect(dry.removedInitLayers).toEqual([other.record.initLayer])
    expect(existsSync(paths.initLayer(other.record.initLayer!))).toBe(true)
    const r = await collectGarbage(paths, content, index, { graceMs: 0 })
    expect(r.removedInitLayers).toEqual([other.record.initLayer])
    expect(readdirSync(paths.initLayers)).toEqual([a.record.initLayer])
    await snaps.remove('a')
  })

  it.each([
    ['a relative path', { path: 'etc/hosts', type: 'file' }, 'mountTargets.0.path'],
    ['a .. component', { path: '/etc/../../x', type: 'file' }, 'mountTargets.0.path'],
    ['an unknown type', { path: '/x', type: 'socket' }, 'mountTargets.0.type'],
  ])('refuses %s before anything is made', async (_label, target, field) => {
    const chainIds = image()
    const err = await snaps.prepare({ id: 'bad', image: 'i', manifestDigest: DIGEST, chainIds, mountTargets: [target as MountTarget] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect((err as StoreError).code).toBe('ERR_STORE_INVALID')
    expect((err as StoreError).field).toBe(field)
    expect(existsSync(paths.snapshot('bad'))).toBe(false)
    expect(existsSync(paths.initLayers)).toBe(false)
  })
})
