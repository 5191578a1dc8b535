/**
 * Unpacking layers for real, as root: every entry kind with its owners, modes, times and
 * xattrs; whiteouts; compression by media type and by magic; chain ids; once per chain id;
 * digest and diff id checks; and GNU tar's own archives unpacked to the same tree as their
 * source (with node-tar as a second opinion on how the archives parse).
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, linkSync, lutimesSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Parser } from 'tar'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lsetxattr } from '@ctr/native'
import { buildFixtures, FIXED_MTIME, type Fixtures } from '@ctr/registry-harness'
import { StoreError } from '../src/errors.js'
import { StorePaths } from '../src/paths.js'
import { chainId, chainIds } from '../src/layers/chain-id.js'
import { TarReader, type TarEntry } from '../src/layers/tar-reader.js'
import { cleanLayerTemporaries, unpackImageLayers, unpackLayer, type UnpackProgress } from '../src/layers/unpack.js'
import { readLayerRecord } from '../src/layers/record.js'
import { fdCount, layerDirs, tempDir, tree, type Node } from './helpers/layers-fs.js'
import { LAYER_MEDIA_TYPES, rawTar, sha256, writeBlob, type RawEntry } from './helpers/layers-tar.js'

const root = tempDir()
let n = 0
/** A fresh store and a place for blobs. */
function store(): { paths: StorePaths; blob: (name: string) => string } {
  const dir = join(root.dir, `s${n++}`)
  mkdirSync(dir)
  return { paths: new StorePaths(join(dir, 'store')), blob: (name) => join(dir, name) }
}

/** The code of the StoreError a promise rejects with. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    if (err instanceof StoreError) return err.code
    throw err
  }
  throw new Error('expected a rejection')
}

const T = 1_600_000_000
// security.capability v2 with cap_setuid (bit 7: a 0x80 byte) and cap_net_raw: binary, not UTF-8.
const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])

let fdsAtStart = 0
beforeAll(() => {
  fdsAtStart = fdCount()
})
afterAll(() => {
  root.remove()
})

describe('chain ids', () => {
  it('follow the OCI image spec: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))', () => {
    const a = 'sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb'
    const b = 'sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d'
    // printf 'sha256:ca97… sha256:3e23…' | sha256sum
    const ab = 'sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676'
    expect(chainIds([a, b])).toEqual([a, ab])
    expect(chainId(undefined, a)).toBe(a)
    expect(chainId(a, b)).toBe(ab)
    const shell = execFileSync('sh', ['-c', `printf '%s' "${ab} ${a}" | sha256sum`]).toString().slice(0, 64)
    expect(chainIds([a, b, a])[2]).toBe(`sha256:${shell}`)
    expect(chainIds([])).toEqual([])
    expect(() => chainIds([a, 'nope'])).toThrow(expect.objectContaining({ code: 'ERR_STORE_BAD_IMAGE' }))
  })
})

describe('every entry kind', () => {
  const entries: RawEntry[] = [
    { name: './', type: '5', mode: 0o750, uid: 0, gid: 0, mtime: T + 1 },
    { name: 'etc/', type: '5', mode: 0o755, mtime: T + 2 },
    {
      name: 'etc/passwd',
      data: 'root:x:0:0::/root:/bin/sh\n',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: T + 3,
      pax: [['SCHILY.xattr.user.comment', 'hello'], ['SCHILY.xattr.trusted.note', Buffer.from([0, 1, 2, 0xff, 0x0a])]],
    },
    { name: 'bin/', type: '5', mode: 0o755, mtime: T + 4 },
    { name: 'bin/ping', data: Buffer.alloc(3000, 7), mode: 0o4755, uid: 0, gid: 0, mtime: T + 5, pax: [['SCHILY.xattr.security.capability', CAP]] },
    { name: 'bin/tool', data: 'x', mode: 0o2711, uid: 1000, gid: 1001, mtime: T + 6 },
    { name: 'bin/sh', type: '2', linkname: '/bin/busybox', uid: 7, gid: 8, mtime: T + 7 },
    { name: 'bin/rel', type: '2', linkname: '../etc/passwd', mtime: T + 8 },
    { name: 'bin/hard', type: '1', linkname: 'bin/tool', mtime: T + 9 },
    { name: './bin/hard2', type: '1', linkname: './bin/tool' },
    { name: 'tmp/', type: '5', mode: 0o1777, mtime: T + 10 },
    { name: 'home/user/', type: '5', mode: 0o2750, uid: 1000, gid: 1000, mtime: T + 11, pax: [['LIBARCHIVE.xattr.user.a%3Db', Buffer.from('dmFsdWU=')]] },
    { name: 'home/user/.profile', data: 'export A=1\n', mode: 0o600, uid: 1000, gid: 1000, mtime: T + 12 },
    { name: 'dev/', type: '5', mtime: T + 13 },
    { name: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666, mtime: T + 14 },
    { name: 'dev/sda1', type: '4', devmajor: 8, devminor: 1, mode: 0o660, gid: 6, mtime: T + 15 },
    { name: 'dev/big', type: '3', devmajor: 300, devminor: 70_000, mode: 0o600, format: 'gnu', mtime: T + 16 },
    { name: 'dev/zero', type: '3', devmajor: 1, devminor: 5, mode: 0o666, format: 'gnu', mtime: T + 16 },
    { name: 'run/pipe', type: '6', mode: 0o620, mtime: T + 17 },
    { name: 'empty', data: '', mode: 0o400, mtime: T + 18 },
    // Long names three ways: pax path, GNU long name, ustar prefix; a long link target.
    { name: 'PaxTrunc', pax: [['path', `long/${'p'.repeat(150)}/file`], ['mtime', `${T + 19}.5`]], data: 'pax' },
    { name: 'gnutrunc', gnuLongName: `long/${'g'.repeat(150)}/file`, data: 'gnu', format: 'gnu' },
    { name: 'file', prefix: `long/${'u'.repeat(120)}`, data: 'ustar' },
    { name: 'long/link', type: '2', linkname: 'x', gnuLongLink: `/${'t'.repeat(200)}` },
    // Owners beyond octal fields: base-256 uid and a pax uid.
    { name: 'owners/b256', data: '', base256Uid: 3_000_000_000, gid: 5 },
    { name: 'owners/pax', data: '', pax: [['uid', '4000000000'], ['gid', '70000']] },
    // Whiteouts and an opaque directory.
    { name: 'var/.wh.cache', mtime: T + 20, uid: 3, gid: 4 },
    { name: 'opt/', type: '5', mtime: T + 21 },
    { name: 'opt/.wh..wh..opq', mtime: T + 21 },
    { name: '.wh..wh.plnk/', type: '5' },
  ]
  let fsDir = ''
  let t: Map<string, Node>
  beforeAll(async () => {
    const s = store()
    const b = writeBlob(s.blob('layer'), rawTar(entries), 'gzip')
    const r = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
    expect(r).toEqual({ chainId: b.diffId, created: true })
    fsDir = s.paths.layerFs(r.chainId)
    t = tree(fsDir)
  })

  it('keeps owners, modes (set-uid, set-gid, sticky) and content', () => {
    expect(t.get('')).toMatchObject({ type: 'dir', mode: 0o750, uid: 0, gid: 0, mtime: T + 1 })
    expect(t.get('etc/passwd')).toMatchObject({ type: 'file', mode: 0o644, size: 26 })
    expect(readFileSync(join(fsDir, 'etc/passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n')
    expect(t.get('bin/ping')).toMatchObject({ type: 'file', mode: 0o4755, uid: 0, size: 3000 })
    expect(t.get('bin/tool')).toMatchObject({ mode: 0o2711, uid: 1000, gid: 1001 })
    expect(t.get('tmp')).toMatchObject({ type: 'dir', mode: 0o1777 })
    expect(t.get('home/user')).toMatchObject({ type: 'dir', mode: 0o2750, uid: 1000, gid: 1000 })
    expect(t.get('home/user/.profile')).toMatchObject({ mode: 0o600, uid: 1000, gid: 1000 })
    expect(t.get('empty')).toMatchObject({ type: 'file', size: 0, mode: 0o400 })
    expect(t.get('owners/b256')).toMatchObject({ uid: 3_000_000_000, gid: 5 })
    expect(t.get('owners/pax')).toMatchObject({ uid: 4_000_000_000, gid: 70_000 })
  })

  it('sets mtimes, directories after their children', () => {
    expect(t.get('etc')?.mtime).toBe(T + 2)
    expect(t.get('etc/passwd')?.mtime).toBe(T + 3)
    expect(t.get('bin')?.mtime).toBe(T + 4) // children were created after the directory entry
    expect(t.get('bin/sh')?.mtime).toBe(T + 7) // a symlink's own time
    expect(t.get('dev')?.mtime).toBe(T + 13)
    expect(t.get('run/pipe')?.mtime).toBe(T + 17)
    expect(t.get(`long/${'p'.repeat(150)}/file`)?.mtime).toBe(T + 19)
  })

  it('keeps xattrs: user.*, trusted.*, binary security.capability, LIBARCHIVE.xattr.*', () => {
    expect(t.get('etc/passwd')?.xattrs).toEqual({ 'trusted.note': '000102ff0a', 'user.comment': Buffer.from('hello').toString('hex') })
    expect(t.get('bin/ping')?.xattrs).toEqual({ 'security.capability': CAP.toString('hex') })
    expect(t.get('home/user')?.xattrs).toEqual({ 'user.a=b': Buffer.from('value').toString('hex') })
    // The capability is real: getcap reads it back.
    expect(execFileSync('getcap', [join(fsDir, 'bin/ping')]).toString()).toMatch(/cap_setuid,cap_net_raw[=+]ep/)
  })

  it('makes hardlinks that share an inode, and symlinks as written', () => {
    const tool = t.get('bin/tool')!
    expect(t.get('bin/hard')?.ino).toBe(tool.ino)
    expect(t.get('bin/hard2')?.ino).toBe(tool.ino)
    expect(tool.nlink).toBe(3)
    expect(t.get('bin/sh')).toMatchObject({ type: 'symlink', link: '/bin/busybox', uid: 7, gid: 8 })
    expect(t.get('bin/rel')).toMatchObject({ type: 'symlink', link: '../etc/passwd' })
    expect(t.get('long/link')).toMatchObject({ type: 'symlink', link: `/${'t'.repeat(200)}` })
  })

  it('makes device nodes (ustar and GNU headers, big numbers) and fifos', () => {
    const dev = (maj: number, min: number): number => (maj << 8) | (min & 0xff) | ((min & ~0xff) << 12)
    expect(t.get('dev/null')).toMatchObject({ type: 'char', rdev: dev(1, 3), mode: 0o666 })
    expect(t.get('dev/zero')).toMatchObject({ type: 'char', rdev: dev(1, 5) }) // GNU format: not 0/0
    expect(t.get('dev/sda1')).toMatchObject({ type: 'block', rdev: dev(8, 1), mode: 0o660, gid: 6 })
    expect(t.get('dev/big')).toMatchObject({ type: 'char', rdev: dev(300, 70_000) })
    expect(t.get('run/pipe')).toMatchObject({ type: 'fifo', mode: 0o620 })
  })

  it('reads long names from pax, GNU long-name records and the ustar prefix', () => {
    expect(readFileSync(join(fsDir, `long/${'p'.repeat(150)}/file`), 'utf8')).toBe('pax')
    expect(readFileSync(join(fsDir, `long/${'g'.repeat(150)}/file`), 'utf8')).toBe('gnu')
    expect(readFileSync(join(fsDir, `long/${'u'.repeat(120)}/file`), 'utf8')).toBe('ustar')
    expect(existsSync(join(fsDir, 'PaxTrunc'))).toBe(false)
    expect(existsSync(join(fsDir, 'gnutrunc'))).toBe(false)
  })

  it('turns OCI whiteouts into overlay whiteouts and opaque directories', () => {
    expect(t.get('var/cache')).toMatchObject({ type: 'char', rdev: 0, uid: 3, gid: 4, mtime: T + 20 })
    expect(t.has('var/.wh.cache')).toBe(false)
    expect(t.get('opt')?.xattrs).toEqual({ 'trusted.overlay.opaque': Buffer.from('y').toString('hex') })
    expect(t.has('opt/.wh..wh..opq')).toBe(false)
    expect(t.has('.wh..wh.plnk')).toBe(false) // AUFS bookkeeping is ignored
  })

  it('writes layer.json', async () => {
    const paths = new StorePaths(join(fsDir, '..', '..', '..'))
    const id = `sha256:${join(fsDir, '..').split('/').pop()!}`
    const rec = await readLayerRecord(paths, id)
    expect(rec).toMatchObject({ chainId: id, diffId: id, parent: null })
    expect(rec?.unpackedBytes).toBe(26 + 3000 + 1 + 11 + 3 + 3 + 5)
  })
})

describe('later entries replace earlier ones', () => {
  it('as tar does: file over file, dir over file, file over dir, dir over symlink; a directory over a directory merges', async () => {
    const s = store()
    const tar = rawTar([
      { name: 'a', data: 'one' },
      { name: 'a', data: 'two', mode: 0o600 },
      { name: 'd/', type: '5' },
      { name: 'd/x', data: 'x' },
      { name: 'd', data: 'now a file' },
      { name: 'e', data: 'file first' },
      { name: 'e/', type: '5', mode: 0o700 },
      { name: 'e/y', data: 'y' },
      { name: 'l', type: '2', linkname: 'e' },
      { name: 'l/', type: '5' },
      { name: 'l/z', data: 'z' },
      { name: 'm/', type: '5', mode: 0o700, uid: 1 },
      { name: 'm/keep', data: 'k' },
      { name: 'm/', type: '5', mode: 0o755, uid: 2, mtime: T },
      { name: 'h1', data: 'shared' },
      { name: 'h2', type: '1', linkname: 'h1' },
      { name: 'h2', data: 'replaced' },
      { name: 's', type: '2', linkname: 'a' },
      { name: 's', type: '2', linkname: 'b' },
    ])
    const b = writeBlob(s.blob('l'), tar, 'none')
    const { chainId: id } = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
    const fsDir = s.paths.layerFs(id)
    const t = tree(fsDir)
    expect(readFileSync(join(fsDir, 'a'), 'utf8')).toBe('two')
    expect(t.get('a')?.mode).toBe(0o600)
    expect(t.get('d')).toMatchObject({ type: 'file' })
    expect(readFileSync(join(fsDir, 'd'), 'utf8')).toBe('now a file')
    expect(t.get('e')).toMatchObject({ type: 'dir', mode: 0o700 })
    expect(t.get('l')).toMatchObject({ type: 'dir' })
    expect(t.has('l/z')).toBe(true)
    expect(t.has('e/z')).toBe(false) // not written through the symlink the directory replaced
    expect(t.get('m')).toMatchObject({ type: 'dir', mode: 0o755, uid: 2, mtime: T })
    expect(t.has('m/keep')).toBe(true)
    expect(readFileSync(join(fsDir, 'h1'), 'utf8')).toBe('shared')
    expect(readFileSync(join(fsDir, 'h2'), 'utf8')).toBe('replaced')
    expect(t.get('h1')?.nlink).toBe(1)
    expect(t.get('s')?.link).toBe('b')
  })

  it('resolves names through the layer’s own symlinks as if the layer were / (when they lead to a directory in it)', async () => {
    const s = store()
    const tar = rawTar([
      { name: 'usr/lib/', type: '5' },
      { name: 'lib', type: '2', linkname: '/usr/lib' },
      { name: 'lib/libc.so', data: 'libc' },
      { name: 'up', type: '2', linkname: '../../../../usr' },
      { name: 'up/lib/more', data: 'more' },
      { name: 'lib/sub/deeper', data: 'deep' }, // sub is created inside usr/lib
    ])
    const b = writeBlob(s.blob('l'), tar, 'gzip')
    const { chainId: id } = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
    const fsDir = s.paths.layerFs(id)
    expect(readFileSync(join(fsDir, 'usr/lib/libc.so'), 'utf8')).toBe('libc')
    expect(readFileSync(join(fsDir, 'usr/lib/more'), 'utf8')).toBe('more')
    expect(readFileSync(join(fsDir, 'usr/lib/sub/deeper'), 'utf8')).toBe('deep')
  })
})

describe('compression', () => {
  const tar = rawTar([{ name: 'hello', data: 'world\n' }])
  for (const c of ['gzip', 'zstd', 'none'] as const) {
    it(`${c}, by media type`, async () => {
      const s = store()
      const b = writeBlob(s.blob('l'), tar, c)
      const { chainId: id } = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
      expect(readFileSync(join(s.paths.layerFs(id), 'hello'), 'utf8')).toBe('world\n')
    })
  }
  for (const [c, mt] of [
    ['gzip', LAYER_MEDIA_TYPES.none],
    ['zstd', 'application/vnd.docker.image.rootfs.diff.tar.gzip'],
    ['none', LAYER_MEDIA_TYPES.zstd],
  ] as const) {
    it(`${c} under the media type ${mt}: the magic bytes win`, async () => {
      const s = store()
      const b = writeBlob(s.blob('l'), tar, c, mt)
      const { chainId: id } = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
      expect(readFileSync(join(s.paths.layerFs(id), 'hello'), 'utf8')).toBe('world\n')
    })
  }
  it('refuses a media type that is not a layer', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'gzip', 'application/vnd.oci.image.config.v1+json')
    const err = await unpackLayer(s.paths, b, b.diffId, undefined).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_UNSUPPORTED' })
    expect((err as Error).message).toContain('application/vnd.oci.image.config.v1+json')
    expect(layerDirs(join(s.paths.root))).toEqual([])
  })
})

describe('once per chain id', () => {
  it('a second unpack does not read the blob', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), rawTar([{ name: 'f', data: 'x' }]), 'gzip')
    expect((await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })).created).toBe(true)
    rmSync(b.blobPath) // it is not needed any more
    const progress: UnpackProgress[] = []
    expect(await unpackLayer(s.paths, b, b.diffId, undefined, { onProgress: (p) => progress.push(p) })).toEqual({ chainId: b.diffId, created: false })
    expect(progress).toEqual([])
  })

  it('two images sharing a base layer unpack it once; chain ids bottom first', async () => {
    const s = store()
    const base = writeBlob(s.blob('base'), rawTar([{ name: 'base', data: 'b' }]), 'gzip')
    const top1 = writeBlob(s.blob('top1'), rawTar([{ name: 'one', data: '1' }]), 'zstd')
    const top2 = writeBlob(s.blob('top2'), rawTar([{ name: 'two', data: '2' }]), 'none')
    const byDigest = new Map([base, top1, top2].map((b) => [b.digest, b.blobPath]))
    const desc = (b: typeof base) => ({ mediaType: b.mediaType, digest: b.digest as `sha256:${string}`, size: b.size })
    const reads: string[] = []
    const onProgress = (p: UnpackProgress): void => {
      if (p.bytes === p.total) reads.push(p.layer)
    }
    const ids1 = await unpackImageLayers(s.paths, (d) => byDigest.get(d)!, [desc(base), desc(top1)], [base.diffId, top1.diffId], { fsync: false, onProgress })
    expect(ids1).toEqual(chainIds([base.diffId, top1.diffId]))
    const ids2 = await unpackImageLayers(s.paths, (d) => byDigest.get(d)!, [desc(base), desc(top2)], [base.diffId, top2.diffId], { fsync: false, onProgress })
    expect(ids2[0]).toBe(ids1[0])
    expect(reads.sort()).toEqual([base.digest, top1.digest, top2.digest].sort())
    expect(layerDirs(s.paths.root)).toEqual([...new Set([...ids1, ...ids2])].map((id) => id.slice(7)).sort())
    expect(await readLayerRecord(s.paths, ids2[1]!)).toMatchObject({ parent: ids1[0], diffId: top2.diffId, digest: top2.digest, size: top2.size })
  })

  it('two unpacks of one layer at once: one creates it, the other finds it', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), rawTar(Array.from({ length: 200 }, (_, i) => ({ name: `f${i}`, data: 'x'.repeat(i) }))), 'gzip')
    const [r1, r2] = await Promise.all([unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false }), unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })])
    expect([r1.created, r2.created].sort()).toEqual([false, true])
    expect(layerDirs(s.paths.root)).toEqual([b.diffId.slice(7)])
  })

  it('another process that renames the same layer into place first wins; ours is dropped', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), rawTar([{ name: 'mine', data: 'x' }]), 'gzip')
    const dir = s.paths.layer(b.diffId)
    const r = await unpackLayer(s.paths, b, b.diffId, undefined, {
      fsync: false,
      onProgress: () => {
        // What another process's finished unpack looks like, appearing while ours runs.
        mkdirSync(join(dir, 'fs', 'theirs'), { recursive: true })
        writeFileSync(join(dir, 'layer.json'), '{}')
      },
    })
    expect(r).toEqual({ chainId: b.diffId, created: false })
    expect(existsSync(join(dir, 'fs', 'theirs'))).toBe(true)
    expect(layerDirs(s.paths.root)).toEqual([b.diffId.slice(7)])
  })

  it('a layer directory without layer.json (half removed) is replaced', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), rawTar([{ name: 'mine', data: 'x' }]), 'gzip')
    mkdirSync(join(s.paths.layerFs(b.diffId), 'junk'), { recursive: true })
    expect((await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })).created).toBe(true)
    expect(existsSync(join(s.paths.layerFs(b.diffId), 'mine'))).toBe(true)
    expect(existsSync(join(s.paths.layerFs(b.diffId), 'junk'))).toBe(false)
    expect(layerDirs(s.paths.root)).toEqual([b.diffId.slice(7)])
  })

  it('checks that the manifest and the config agree on the number of layers', async () => {
    const s = store()
    await expect(unpackImageLayers(s.paths, () => '', [], [sha256('x')])).rejects.toMatchObject({ code: 'ERR_STORE_BAD_IMAGE' })
  })

  it('the first failing layer stops the others; nothing is left of any', async () => {
    const s = store()
    const big = writeBlob(s.blob('big'), rawTar(Array.from({ length: 300 }, (_, i) => ({ name: `d/f${i}`, data: Buffer.alloc(20_000, i) }))), 'gzip')
    const bad = writeBlob(s.blob('bad'), rawTar([{ name: 'x', data: 'x' }]), 'gzip')
    const desc = (b: typeof big) => ({ mediaType: b.mediaType, digest: b.digest as `sha256:${string}`, size: b.size })
    const paths = new Map([
      [big.digest, big.blobPath],
      [bad.digest, bad.blobPath],
    ])
    const err = await unpackImageLayers(s.paths, (d) => paths.get(d)!, [desc(big), desc(bad)], [big.diffId, sha256('wrong')], { fsync: false }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_DIFF_ID_MISMATCH' })
    // The big one may have finished first; nothing half-done is there either way.
    expect(layerDirs(s.paths.root).filter((d) => d.startsWith('.tmp-'))).toEqual([])
  })
})

describe('verification', () => {
  const tar = rawTar([{ name: 'f', data: 'content' }])
  it('a diff id that does not match: ERR_STORE_DIFF_ID_MISMATCH, no layer', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'gzip')
    const wrong = sha256('other')
    const err = await unpackLayer(s.paths, b, wrong, undefined).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err).toMatchObject({ code: 'ERR_STORE_DIFF_ID_MISMATCH', digest: b.digest })
    expect(layerDirs(s.paths.root)).toEqual([])
  })
  it('a blob that does not match its digest: ERR_STORE_DIGEST_MISMATCH, no layer', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'gzip')
    expect(await codeOf(unpackLayer(s.paths, { ...b, digest: sha256('not it') }, b.diffId, undefined))).toBe('ERR_STORE_DIGEST_MISMATCH')
    expect(layerDirs(s.paths.root)).toEqual([])
  })
  it('a blob of another size: ERR_STORE_SIZE_MISMATCH, no layer', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'gzip')
    expect(await codeOf(unpackLayer(s.paths, { ...b, size: b.size - 1 }, b.diffId, undefined))).toBe('ERR_STORE_SIZE_MISMATCH')
    expect(await codeOf(unpackLayer(s.paths, { ...b, size: b.size + 1 }, b.diffId, undefined))).toBe('ERR_STORE_SIZE_MISMATCH')
    expect(layerDirs(s.paths.root)).toEqual([])
  })
  it('a corrupted blob is reported as the digest mismatch it is, not as the gzip error it causes', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), rawTar(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: `file ${i}`.repeat(100) }))), 'gzip')
    const bytes = readFileSync(b.blobPath)
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff
    writeFileSync(b.blobPath, bytes)
    const err = await unpackLayer(s.paths, b, b.diffId, undefined).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_DIGEST_MISMATCH' })
    expect(layerDirs(s.paths.root)).toEqual([])
  })
  it('a missing blob: ERR_STORE_NOT_FOUND', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'gzip')
    rmSync(b.blobPath)
    expect(await codeOf(unpackLayer(s.paths, b, b.diffId, undefined))).toBe('ERR_STORE_NOT_FOUND')
    expect(layerDirs(s.paths.root)).toEqual([])
  })
  it('with fsync (the default) the layer is the same', async () => {
    const s = store()
    const b = writeBlob(s.blob('l'), tar, 'zstd')
    const { chainId: id, created } = await unpackLayer(s.paths, b, b.diffId, undefined)
    expect(created).toBe(true)
    expect(readFileSync(join(s.paths.layerFs(id), 'f'), 'utf8')).toBe('content')
  })
})

describe('GNU tar archives unpack to the tree they were made from', () => {
  let src = ''
  beforeAll(() => {
    src = join(root.dir, 'src')
    const p = (rel: string): string => join(src, rel)
    mkdirSync(p('etc/ssl'), { recursive: true })
    mkdirSync(p('tmp'))
    mkdirSync(p('srv/shared'), { recursive: true })
    mkdirSync(p('dev'))
    mkdirSync(p(`deep/${'d'.repeat(120)}/${'e'.repeat(120)}`), { recursive: true })
    writeFileSync(p('etc/hostname'), 'box\n')
    writeFileSync(p('etc/ssl/big.bin'), Buffer.alloc(1 << 20, 0x5a))
    writeFileSync(p('etc/empty'), '')
    writeFileSync(p(`deep/${'d'.repeat(120)}/${'e'.repeat(120)}/${'f'.repeat(100)}`), 'deep')
    copyFileLike('/bin/true', p('ping'))
    linkSync(p('etc/hostname'), p('etc/hostname.hard'))
    linkSync(p('etc/hostname'), p('srv/hostname.hard2'))
    symlinkSync('/etc/hostname', p('abs-link'))
    symlinkSync('../etc/ssl', p('srv/rel-link'))
    symlinkSync('nowhere', p('dangling'))
    execFileSync('mknod', ['-m', '0666', p('dev/null'), 'c', '1', '3'])
    execFileSync('mknod', ['-m', '0640', p('dev/loop9'), 'b', '7', '9'])
    execFileSync('mkfifo', ['-m', '0600', p('tmp/fifo')])
    chmodSync(p('tmp'), 0o1777)
    chmodSync(p('srv/shared'), 0o2775)
    chownSync(p('srv/shared'), 1000, 1000)
    chownSync(p('etc/hostname'), 101, 102)
    chmodSync(p('ping'), 0o4755)
    execFileSync('setcap', ['cap_setuid,cap_net_raw+ep', p('ping')])
    lsetxattr(p('etc/ssl'), 'user.dir', Buffer.from('on a directory'))
    lsetxattr(p('etc/hostname'), 'user.bin', Buffer.from([0x80, 0, 0x0a, 0xff]))
    lsetxattr(p('abs-link'), 'trusted.link', Buffer.from('on a symlink'))
    // Fixed times everywhere, directories last.
    const all = execFileSync('find', [src, '-depth']).toString().trim().split('\n')
    all.forEach((f, i) => lutimesSync(f, T + i, T + i))
  })

  function copyFileLike(from: string, to: string): void {
    writeFileSync(to, readFileSync(from))
  }

  /** The tree with what a tar cannot carry left out (inode numbers, socket-ness). */
  function comparable(t: Map<string, Node>, opts: { xattrs: boolean }): unknown {
    const groups = new Map<number, string[]>()
    for (const [k, v] of t) if (v.type === 'file') groups.set(v.ino, [...(groups.get(v.ino) ?? []), k])
    return {
      nodes: [...t].map(([k, v]) => [k, { ...v, ino: 0, xattrs: opts.xattrs ? v.xattrs : {} }]),
      links: [...groups.values()].map((g) => g.sort()).sort(),
    }
  }

  for (const format of ['posix', 'gnu'] as const) {
    it(`--format=${format}`, async () => {
      const s = store()
      const tarFile = s.blob('layer.tar')
      const xattrs = format === 'posix'
      execFileSync('tar', [
        '-C',
        src,
        `--format=${format}`,
        '--numeric-owner',
        ...(xattrs ? ['--xattrs', '--xattrs-include=*'] : []),
        '-cf',
        tarFile,
        '.',
      ])
      const tar = readFileSync(tarFile)
      const b = writeBlob(s.blob('layer'), tar, 'gzip')
      const { chainId: id } = await unpackLayer(s.paths, b, b.diffId, undefined, { fsync: false })
      expect(comparable(tree(s.paths.layerFs(id)), { xattrs })).toEqual(comparable(tree(src), { xattrs }))
    })
  }

  it('node-tar reads the same entries from these archives (except GNU device numbers, which it does not decode)', async () => {
    for (const format of ['posix', 'gnu'] as const) {
      const tar = execFileSync('tar', ['-C', src, `--format=${format}`, '--numeric-owner', '-cf', '-', '.'], { maxBuffer: 1 << 26 })
      const ours: unknown[] = []
      const reader = new TarReader({
        entry: (e: TarEntry) => ours.push(summary(e.name, e.kind, e.size, e.mode, e.uid, e.gid, e.linkname, Math.floor(e.mtime))),
        data: () => {},
        endEntry: () => {},
      })
      reader.write(tar)
      reader.finish()
      const theirs: unknown[] = []
      const kinds: Record<string, string> = {
        File: 'file',
        Directory: 'dir',
        SymbolicLink: 'symlink',
        Link: 'hardlink',
        CharacterDevice: 'char',
        BlockDevice: 'block',
        FIFO: 'fifo',
      }
      await new Promise<void>((resolve, reject) => {
        const p = new Parser({ strict: true })
        p.on('entry', (e) => {
          theirs.push(summary(e.path, kinds[e.type] ?? e.type, e.type === 'File' ? e.size : 0, e.mode ?? 0, e.uid ?? 0, e.gid ?? 0, e.linkpath ?? '', Math.floor((e.mtime?.getTime() ?? 0) / 1000)))
          e.resume()
        })
        p.on('error', reject)
        p.on('end', () => resolve())
        p.end(tar)
      })
      expect(ours).toEqual(theirs)
      expect(ours.length).toBeGreaterThan(15)
    }
  })

  function summary(...f: unknown[]): string {
    return JSON.stringify(f)
  }
})

describe('the fixture images of the registry harness', () => {
  let fixtures: Fixtures
  beforeAll(async () => {
    fixtures = await buildFixtures(join(root.dir, 'fixtures'), { foreignBaseUrl: 'http://127.0.0.1:9' })
  })
  afterAll(async () => {
    await fixtures.close()
  })
  const diffIdsOf = (img: Fixtures['images']['busybox']): string[] =>
    (JSON.parse(readFileSync(fixtures.blobPath(img.config!.digest), 'utf8')) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids

  it('busybox (gzip, zstd, uncompressed) unpacks to what GNU tar makes of it', async () => {
    const s = store()
    const img = fixtures.images.busybox
    const ids = await unpackImageLayers(s.paths, (d) => fixtures.blobPath(d), img.layers!, diffIdsOf(img), { fsync: false })
    const gnu = s.blob('gnu')
    mkdirSync(gnu)
    execFileSync('tar', ['-C', gnu, '--same-owner', '--numeric-owner', '-xzf', fixtures.blobPath(img.layers![0]!.digest)])
    // Directory times aside: GNU tar makes symlinks with `..` in them last (placeholders
    // first, against symlink attacks), after it set their directory's time, so its
    // directories carry the time of extraction; ours carry the archive's.
    const strip = (t: Map<string, Node>) => [...t].map(([k, v]) => [k, { ...v, ino: 0, mtime: v.type === 'dir' ? 0 : v.mtime }])
    const ours = strip(tree(s.paths.layerFs(ids[0]!)))
    expect(tree(s.paths.layerFs(ids[0]!)).get('bin')?.mtime).toBe(Math.floor(FIXED_MTIME.getTime() / 1000))
    expect(ours).toEqual(strip(tree(gnu)))
    expect(ours.length).toBeGreaterThan(100)
    // The same files in zstd and uncompressed blobs are the same layer (same diff id).
    for (const other of [fixtures.images.busyboxZstd, fixtures.images.busyboxUncompressed]) {
      expect(await unpackImageLayers(s.paths, (d) => fixtures.blobPath(d), other.layers!, diffIdsOf(other), { fsync: false })).toEqual(ids)
    }
  })

  it('the two-layer image with a whiteout, an opaque directory, a hardlink and absolute symlinks', async () => {
    const s = store()
    const img = fixtures.images.layers
    const ids = await unpackImageLayers(s.paths, (d) => fixtures.blobPath(d), img.layers!, diffIdsOf(img), { fsync: false })
    expect(ids).toEqual(chainIds(diffIdsOf(img)))
    const top = tree(s.paths.layerFs(ids[1]!))
    expect([...top.values()].some((v) => v.type === 'char' && v.rdev === 0)).toBe(true)
    expect([...top.values()].some((v) => v.xattrs['trusted.overlay.opaque'] === '79')).toBe(true)
    expect([...top.values()].some((v) => v.type === 'symlink' && v.link?.startsWith('/'))).toBe(true)
    expect([...top.values()].some((v) => v.type === 'file' && v.nlink === 2)).toBe(true)
  })
})

describe('hygiene', () => {
  it('no temporaries are left, cleanLayerTemporaries finds nothing, and no fd leaked', async () => {
    for (const d of execFileSync('find', [root.dir, '-maxdepth', '3', '-name', '.tmp-*']).toString().trim().split('\n').filter(Boolean)) {
      throw new Error(`left behind: ${d}`)
    }
    expect(await cleanLayerTemporaries(new StorePaths(join(root.dir, 's0', 'store')))).toBe(0)
    expect(fdCount()).toBe(fdsAtStart)
  })
})
