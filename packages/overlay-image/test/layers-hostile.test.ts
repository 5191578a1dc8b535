/**
 * A corpus of hostile and malformed layer tarballs, one per trick. Each must be refused with a
 * typed error, write nothing outside the layer (a sentinel directory beside the store stays
 * exactly as it was, down to link counts and times), and leave no layer and no temporary.
 */
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StoreError, type StoreErrorCode } from '../src/errors.js'
import { StorePaths } from '../src/paths.js'
import { unpackLayer } from '../src/layers/unpack.js'
import { fdCount, layerDirs, makeSentinel, tempDir, type Sentinel } from './helpers/layers-fs.js'
import { entryBytes, headerBlock, rawTar, writeBlob, type RawEntry } from './helpers/layers-tar.js'

const root = tempDir()
let sentinel: Sentinel
let fds = 0
let n = 0

beforeAll(() => {
  sentinel = makeSentinel(root.dir)
  fds = fdCount()
})
afterAll(() => {
  root.remove()
})

/** Unpacks `tar` (compressed as asked) into a fresh store; returns the error's code and message. */
async function attempt(tar: Buffer, compression: 'gzip' | 'zstd' | 'none' = 'gzip'): Promise<{ code: StoreErrorCode; message: string; path?: string }> {
  const dir = join(root.dir, `s${n++}`)
  const paths = new StorePaths(join(dir, 'store'))
  const { mkdirSync } = await import('node:fs')
  mkdirSync(dir)
  const b = writeBlob(join(dir, 'blob'), tar, compression)
  let err: unknown
  try {
    await unpackLayer(paths, b, b.diffId, undefined, { fsync: false })
  } catch (e) {
    err = e
  }
  sentinel.assertUnchanged()
  expect(layerDirs(paths.root), 'no layer and no temporary is left').toEqual([])
  if (!(err instanceof StoreError)) throw new Error(`expected a StoreError, got ${String(err)}`)
  return { code: err.code, message: err.message, ...(err.path !== undefined ? { path: err.path } : {}) }
}

/** A file entry with content. */
const file = (name: string, data = 'pwned\n', extra: Partial<RawEntry> = {}): RawEntry => ({ name, data, ...extra })

describe('names that leave the layer', () => {
  const cases: Array<[string, RawEntry[]]> = [
    ['`..` at the start', [file('../escape')]],
    ['`..` in the middle that climbs out', [file('a/../../escape')]],
    ['`..` deep', [file(`a/b/../../../${'../'.repeat(10)}tmp/escape`)]],
    ['an absolute name', [file('/tmp/escape')]],
    ['an absolute name at the sentinel', [file('SENTINEL/secret')]],
    ['an absolute directory', [{ name: '/tmp/escape-dir/', type: '5' }]],
    ['a pax path that climbs out', [file('innocent', 'x', { pax: [['path', '../../escape']] })]],
    ['a GNU long name that climbs out', [file('innocent', 'x', { gnuLongName: `${'../'.repeat(40)}escape`, format: 'gnu' })]],
    ['a hardlink to `..`', [{ name: 'h', type: '1', linkname: '../../../etc/passwd' }]],
    ['a hardlink to an absolute name', [{ name: 'h', type: '1', linkname: '/etc/passwd' }]],
    ['a hardlink to the sentinel', [{ name: 'h', type: '1', linkname: 'SENTINEL/secret' }]],
    ['a whiteout of `..`', [file('a/.wh...', '')]],
    ['a whiteout of `.`', [file('a/.wh..', '')]],
    ['a symlink as the layer root', [{ name: './', type: '2', linkname: '/' }]],
    ['a file as the layer root', [file('.')]],
  ]
  for (const [what, entries] of cases) {
    it(`${what}: ERR_STORE_UNSAFE_TAR`, async () => {
      const fixed = entries.map((e) => ({
        ...e,
        name: e.name.replace('SENTINEL', sentinel.dir),
        ...(e.linkname !== undefined ? { linkname: e.linkname.replace('SENTINEL', sentinel.dir) } : {}),
      }))
      const r = await attempt(rawTar(fixed))
      expect(r.code).toBe('ERR_STORE_UNSAFE_TAR')
      expect(r.path).toBe(fixed.at(-1)!.pax?.[0]?.[1] ?? fixed.at(-1)!.gnuLongName ?? fixed.at(-1)!.name)
    })
  }
})

describe('symlinks planted by earlier entries', () => {
  it('a symlink to a directory outside, then a file under it', async () => {
    const r = await attempt(rawTar([{ name: 'evil', type: '2', linkname: sentinel.dir }, file('evil/secret'), file('evil/new')]))
    expect(r.code).toBe('ERR_STORE_UNSAFE_TAR')
    expect(r.message).toContain('`evil` is a symlink')
  })

  it('`evil -> /etc`, then `evil/passwd`', async () => {
    expect((await attempt(rawTar([{ name: 'evil', type: '2', linkname: '/etc' }, file('evil/passwd')]))).code).toBe('ERR_STORE_UNSAFE_TAR')
  })

  it('a relative symlink that climbs out, then a file under it', async () => {
    const up = `${'../'.repeat(30)}${sentinel.dir.slice(1)}`
    expect((await attempt(rawTar([{ name: 'a/up', type: '2', linkname: up }, file('a/up/secret')]))).code).toBe('ERR_STORE_UNSAFE_TAR')
  })

  it('a chain of symlinks', async () => {
    const tar = rawTar([{ name: 'one', type: '2', linkname: 'two' }, { name: 'two', type: '2', linkname: sentinel.dir }, file('one/secret')])
    expect((await attempt(tar)).code).toBe('ERR_STORE_UNSAFE_TAR')
  })

  it('a directory, a file in it, the directory replaced by a symlink outside, a file under it', async () => {
    // The first file leaves the directory's fd cached: the replacement must not reuse it.
    const tar = rawTar([{ name: 'd/', type: '5' }, file('d/a'), { name: 'd', type: '2', linkname: sentinel.dir }, file('d/secret')])
    expect((await attempt(tar)).code).toBe('ERR_STORE_UNSAFE_TAR')
  })

  it('a hardlink through a symlink outside', async () => {
    const r = await attempt(rawTar([{ name: 'evil', type: '2', linkname: sentinel.dir }, { name: 'h', type: '1', linkname: 'evil/secret' }]))
    expect(r.code).toBe('ERR_STORE_UNSAFE_TAR')
    expect(statSync(sentinel.file).nlink).toBe(1)
  })

  it('a hardlink to a file that is not in the layer', async () => {
    expect((await attempt(rawTar([{ name: 'h', type: '1', linkname: 'etc/shadow' }]))).code).toBe('ERR_STORE_BAD_TAR')
  })

  it('a hardlink to a directory', async () => {
    expect((await attempt(rawTar([{ name: 'd/', type: '5' }, { name: 'h', type: '1', linkname: 'd' }]))).code).toBe('ERR_STORE_BAD_TAR')
  })

  it('a file under a file', async () => {
    expect((await attempt(rawTar([file('f'), file('f/g')]))).code).toBe('ERR_STORE_BAD_TAR')
  })

  it('a symlink loop', async () => {
    const tar = rawTar([{ name: 'a', type: '2', linkname: 'b' }, { name: 'b', type: '2', linkname: 'a' }, file('a/x')])
    expect(['ERR_STORE_BAD_TAR', 'ERR_STORE_UNSAFE_TAR']).toContain((await attempt(tar)).code)
  })
})

describe('tricks that must not write outside, and unpack', () => {
  /** These archives are fine: only what they mean inside the layer happens. */
  async function unpacks(entries: RawEntry[]): Promise<string> {
    const dir = join(root.dir, `ok${n++}`)
    const { mkdirSync } = await import('node:fs')
    mkdirSync(dir)
    const paths = new StorePaths(join(dir, 'store'))
    const b = writeBlob(join(dir, 'blob'), rawTar(entries), 'gzip')
    const { chainId } = await unpackLayer(paths, b, b.diffId, undefined, { fsync: false })
    sentinel.assertUnchanged()
    return paths.layerFs(chainId)
  }

  it('a file over a symlink to a file outside replaces the symlink', async () => {
    const fsDir = await unpacks([{ name: 'x', type: '2', linkname: sentinel.file }, file('x', 'mine')])
    expect(readFileSync(join(fsDir, 'x'), 'utf8')).toBe('mine')
  })

  it('a hardlink to a symlink that points outside links the symlink, not its target', async () => {
    const fsDir = await unpacks([{ name: 's', type: '2', linkname: sentinel.file }, { name: 'h', type: '1', linkname: 's' }, file('h', 'mine')])
    expect(readFileSync(join(fsDir, 'h'), 'utf8')).toBe('mine')
  })

  it('a directory over a symlink outside replaces it', async () => {
    const fsDir = await unpacks([{ name: 'd', type: '2', linkname: sentinel.dir }, { name: 'd/', type: '5' }, file('d/secret', 'mine')])
    expect(readFileSync(join(fsDir, 'd/secret'), 'utf8')).toBe('mine')
  })

  it('a symlink to an absolute path that exists in the layer resolves inside it', async () => {
    const fsDir = await unpacks([{ name: 'etc/', type: '5' }, { name: 'evil', type: '2', linkname: '/etc' }, file('evil/passwd', 'mine')])
    expect(readFileSync(join(fsDir, 'etc/passwd'), 'utf8')).toBe('mine')
  })

  it('a symlink to `/`, then entries under it: they land in the layer root', async () => {
    const fsDir = await unpacks([{ name: 'root', type: '2', linkname: '/' }, { name: `root${sentinel.dir}/`, type: '5' }, file(`root${sentinel.dir}/secret`, 'mine')])
    expect(readFileSync(join(fsDir, sentinel.dir, 'secret'), 'utf8')).toBe('mine')
  })

  it('a device node with a link name, and devices named like the host’s', async () => {
    const fsDir = await unpacks([
      { name: 'dev/sda', type: '4', devmajor: 8, devminor: 0, linkname: '/dev/sda' },
      { name: 'dev/mem', type: '3', devmajor: 1, devminor: 1 },
    ])
    expect(statSync(join(fsDir, 'dev/sda')).isBlockDevice()).toBe(true)
  })

  it('xattrs that would steer overlayfs are dropped', async () => {
    const fsDir = await unpacks([
      { name: 'd/', type: '5', pax: [['SCHILY.xattr.trusted.overlay.redirect', '/etc'], ['SCHILY.xattr.trusted.overlay.opaque', 'y']] },
    ])
    const { llistxattr } = await import('@ctr/native')
    expect(llistxattr(join(fsDir, 'd'))).toEqual([])
  })
})

describe('malformed archives', () => {
  const hdr = (e: RawEntry & { size?: number }): Buffer => headerBlock({ type: '0', size: 0, ...e } as RawEntry & { size: number; type: string })
  const cases: Array<[string, () => Buffer, StoreErrorCode, ('gzip' | 'none')?]> = [
    ['an invalid header checksum', () => rawTar([file('a', 'x', { badChecksum: true })]), 'ERR_STORE_BAD_TAR'],
    ['a size of 1 TB in a small uncompressed blob', () => rawTar([file('big', 'x', { base256Size: 2 ** 40 })], { end: false }), 'ERR_STORE_BAD_TAR', 'none'],
    ['a size of 1 TB in a small gzip blob', () => rawTar([file('big', 'x', { base256Size: 2 ** 40 })]), 'ERR_STORE_BAD_TAR', 'gzip'],
    ['a size beyond 2^53', () => rawTar([file('big', 'x', { base256Size: 2 ** 60 })]), 'ERR_STORE_BAD_TAR'],
    ['a size field that is not a number', () => rawTar([file('a', 'x', { rawSize: '12x4' })]), 'ERR_STORE_BAD_TAR'],
    ['a pax path of 1 MiB', () => rawTar([file('a', 'x', { pax: [['path', 'p/'.repeat(1 << 19)]] })]), 'ERR_STORE_BAD_TAR'],
    ['a GNU long name of 2 MiB', () => rawTar([file('a', 'x', { gnuLongName: 'n'.repeat(2 << 20), format: 'gnu' })]), 'ERR_STORE_BAD_TAR'],
    ['a name longer than PATH_MAX', () => rawTar([file('a', 'x', { pax: [['path', 'd/'.repeat(3000)]] })]), 'ERR_STORE_BAD_TAR'],
    ['a name component longer than NAME_MAX', () => rawTar([file('a', 'x', { pax: [['path', 'n'.repeat(300)]] })]), 'ERR_STORE_BAD_TAR'],
    ['a malformed pax record', () => Buffer.concat([hdr({ name: 'pax', type: 'x', size: 12 }), Buffer.from('99 path=x\n\0\0').subarray(0, 12), Buffer.alloc(500), rawTar([file('a')])]), 'ERR_STORE_BAD_TAR'],
    ['a pax size that is not a number', () => rawTar([file('a', 'x', { pax: [['size', '-5']] })]), 'ERR_STORE_BAD_TAR'],
    ['a pax header with no entry after it', () => Buffer.concat([entryBytes(file('a', 'x', { pax: [['path', 'b']] })).subarray(0, 1024), Buffer.alloc(1024)]), 'ERR_STORE_BAD_TAR'],
    ['a header cut short', () => rawTar([file('a', 'x'.repeat(600))], { end: false }).subarray(0, 1024 + 100), 'ERR_STORE_BAD_TAR'],
    ['file content cut short', () => rawTar([file('a', 'x'.repeat(5000))], { end: false }).subarray(0, 512 + 2000), 'ERR_STORE_BAD_TAR'],
    ['a lone zero block before a header', () => Buffer.concat([Buffer.alloc(512), rawTar([file('a')])]), 'ERR_STORE_BAD_TAR'],
    ['a hardlink without a target', () => rawTar([{ name: 'h', type: '1' }]), 'ERR_STORE_BAD_TAR'],
    ['an empty name', () => rawTar([file('')]), 'ERR_STORE_BAD_TAR'],
    ['random bytes', () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)), 'ERR_STORE_BAD_TAR'],
    ['a GNU sparse file', () => rawTar([{ name: 's', type: 'S', data: '' }]), 'ERR_STORE_UNSUPPORTED'],
    ['a pax sparse file', () => rawTar([file('s', 'x', { pax: [['GNU.sparse.major', '1']] })]), 'ERR_STORE_UNSUPPORTED'],
    ['an unknown entry type', () => rawTar([{ name: 'z', type: 'Z' }]), 'ERR_STORE_UNSUPPORTED'],
    ['a name that is not UTF-8', () => rawTar([file('a', 'x', { pax: [['path', Buffer.from([0x66, 0xff, 0xfe])]] })]), 'ERR_STORE_UNSUPPORTED'],
  ]
  for (const [what, make, code, compression] of cases) {
    it(`${what}: ${code}`, async () => {
      expect((await attempt(make(), compression ?? 'gzip')).code).toBe(code)
    })
  }
})

describe('hygiene', () => {
  it('no fd was leaked by any of the failures', () => {
    expect(fdCount()).toBe(fds)
  })
})
