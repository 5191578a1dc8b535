/**
 * The file-system primitives the image store builds on: openat2's RESOLVE_IN_ROOT confines
 * symlinks and `..`, mknodat makes devices and whiteouts, the l*xattr calls do not follow a
 * final symlink, and mountIn resolves relative overlay paths without moving the process's cwd.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  AT_FDCWD, close, FileType, lgetxattr, llistxattr, lsetxattr, makedev, mknodat, mount, mountIn, MountFlag,
  FsBatchOp, fsBatch, mkdirs, OpenFlag, openat2, removeTree, ResolveFlag, rmdirs, umount2,
} from '../lib/index.js'

let dir: string
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-fsops-')) })
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }) })

const openRoot = (p: string): number => openat2(AT_FDCWD, p, OpenFlag.O_PATH | OpenFlag.O_DIRECTORY, 0, 0)

describe('openat2', () => {
  it('resolves an absolute symlink inside the root with RESOLVE_IN_ROOT', () => {
    const root = path.join(dir, 'root')
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true })
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'inside\n')
    fs.symlinkSync('/etc', path.join(root, 'evil'))
    const rootFd = openRoot(root)
    try {
      const fd = openat2(rootFd, 'evil/passwd', OpenFlag.O_RDONLY, 0, ResolveFlag.IN_ROOT)
      try { expect(fs.readFileSync(fd, 'utf8')).toBe('inside\n') } finally { close(fd) }
      // `..` above the root stays at the root.
      const up = openat2(rootFd, '../../../etc/passwd', OpenFlag.O_RDONLY, 0, ResolveFlag.IN_ROOT)
      try { expect(fs.readFileSync(up, 'utf8')).toBe('inside\n') } finally { close(up) }
    } finally { close(rootFd) }
  })

  it('refuses to leave the directory with RESOLVE_BENEATH, with a typed error', () => {
    fs.symlinkSync('/etc', path.join(dir, 'evil'))
    const rootFd = openRoot(dir)
    try {
      expect(() => openat2(rootFd, 'evil/passwd', OpenFlag.O_RDONLY, 0, ResolveFlag.BENEATH))
        .toThrow(expect.objectContaining({ code: 'EXDEV', syscall: 'openat2', path: 'evil/passwd' }))
    } finally { close(rootFd) }
  })

  it('creates files exclusively and without following a final symlink', () => {
    const rootFd = openRoot(dir)
    try {
      const flags = OpenFlag.O_WRONLY | OpenFlag.O_CREAT | OpenFlag.O_EXCL | OpenFlag.O_NOFOLLOW
      const fd = openat2(rootFd, 'new', flags, 0o640, ResolveFlag.IN_ROOT)
      fs.writeSync(fd, 'x')
      close(fd)
      expect(fs.statSync(path.join(dir, 'new')).mode & 0o777).toBe(0o640 & ~process.umask())
      expect(() => openat2(rootFd, 'new', flags, 0o640, ResolveFlag.IN_ROOT)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
      fs.symlinkSync('/tmp/ctr-should-not-exist', path.join(dir, 'link'))
      expect(() => openat2(rootFd, 'link', flags, 0o640, ResolveFlag.IN_ROOT)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
      expect(fs.existsSync('/tmp/ctr-should-not-exist')).toBe(false)
    } finally { close(rootFd) }
  })

  it('sets close-on-exec on every fd it returns', () => {
    const fd = openRoot(dir)
    try {
      const flags = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/flags:\s+(\d+)/)![1]!
      expect(parseInt(flags, 8) & OpenFlag.O_CLOEXEC).toBe(OpenFlag.O_CLOEXEC)
    } finally { close(fd) }
  })
})

describe('mknodat', () => {
  it('makes an overlay whiteout (char 0/0) and a fifo', () => {
    const rootFd = openRoot(dir)
    try {
      mknodat(rootFd, 'wh', FileType.S_IFCHR | 0o000, makedev(0, 0))
      mknodat(rootFd, 'fifo', FileType.S_IFIFO | 0o644, 0)
      const wh = fs.lstatSync(path.join(dir, 'wh'))
      expect(wh.isCharacterDevice()).toBe(true)
      expect(wh.rdev).toBe(0)
      expect(fs.lstatSync(path.join(dir, 'fifo')).isFIFO()).toBe(true)
      expect(() => mknodat(rootFd, 'wh', FileType.S_IFCHR, 0)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'mknodat' }))
    } finally { close(rootFd) }
  })
})

describe('xattrs', () => {
  it('sets, reads and lists attributes, and does not follow a final symlink', () => {
    const file = path.join(dir, 'f')
    fs.writeFileSync(file, '')
    lsetxattr(file, 'user.greeting', Buffer.from('hello'))
    lsetxattr(file, 'trusted.overlay.opaque', Buffer.from('y'))
    expect(lgetxattr(file, 'user.greeting')?.toString()).toBe('hello')
    expect(lgetxattr(file, 'user.missing')).toBeNull()
    expect(llistxattr(file).sort()).toEqual(['trusted.overlay.opaque', 'user.greeting'])
    const link = path.join(dir, 'l')
    fs.symlinkSync(file, link)
    expect(llistxattr(link)).not.toContain('user.greeting')
    expect(() => lgetxattr(path.join(dir, 'absent'), 'user.x')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'lgetxattr' }))
  })
})

describe('mountIn', () => {
  it('mounts an overlay from relative lower paths without changing the process cwd', () => {
    const cwdBefore = process.cwd()
    for (const d of ['l/a', 'l/b', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(dir, d), { recursive: true })
    fs.writeFileSync(path.join(dir, 'l/a/from-a'), 'a')
    fs.writeFileSync(path.join(dir, 'l/b/from-b'), 'b')
    const merged = path.join(dir, 'merged')
    mountIn(dir, 'overlay', merged, 'overlay', 0, `lowerdir=l/a:l/b,upperdir=${dir}/upper,workdir=${dir}/work`)
    try {
      expect(fs.readdirSync(merged).sort()).toEqual(['from-a', 'from-b'])
      expect(process.cwd()).toBe(cwdBefore)
    } finally { umount2(merged, 0) }
    expect(() => mountIn(path.join(dir, 'nope'), 'overlay', merged, 'overlay', 0, 'lowerdir=l/a'))
      .toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'chdir' }))
    expect(() => mountIn(dir, 'overlay', merged, 'overlay', MountFlag.RDONLY, 'lowerdir=l/missing:l/a'))
      .toThrow(expect.objectContaining({ syscall: 'mount', path: merged }))
  })
})

describe('removeTree', () => {
  it('removes a tree of files, links, fifos, devices, unreadable and nested directories, without following links', async () => {
    const outside = path.join(dir, 'outside')
    fs.mkdirSync(outside)
    fs.writeFileSync(path.join(outside, 'keep'), 'keep')
    const root = path.join(dir, 'tree')
    fs.mkdirSync(path.join(root, 'a/b/c/d'), { recursive: true })
    fs.writeFileSync(path.join(root, 'a/b/c/d/file'), 'x')
    fs.writeFileSync(path.join(root, 'a/file'), 'y')
    fs.symlinkSync(outside, path.join(root, 'a/link-to-outside'))
    fs.symlinkSync(path.join(outside, 'keep'), path.join(root, 'file-link'))
    mknodat(AT_FDCWD, path.join(root, 'a/fifo'), FileType.S_IFIFO | 0o644, 0)
    mknodat(AT_FDCWD, path.join(root, 'whiteout'), FileType.S_IFCHR, makedev(0, 0))
    fs.mkdirSync(path.join(root, 'locked/inner'), { recursive: true })
    fs.chmodSync(path.join(root, 'locked'), 0) // overlay's work/work is like this
    await removeTree(root)
    expect(fs.existsSync(root)).toBe(false)
    expect(fs.readFileSync(path.join(outside, 'keep'), 'utf8')).toBe('keep')
  })

  it('a missing path is fine; a file is unlinked; a relative path is refused', async () => {
    await removeTree(path.join(dir, 'nope'))
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    await removeTree(path.join(dir, 'f'))
    expect(fs.existsSync(path.join(dir, 'f'))).toBe(false)
    expect(() => removeTree('relative/path')).toThrow(/absolute/)
  })

  it('stops at a mount point (a bind mount of the same file system) with EBUSY naming it, and leaves what is below it', async () => {
    const source = path.join(dir, 'source')
    fs.mkdirSync(source)
    fs.writeFileSync(path.join(source, 'precious'), 'p')
    const root = path.join(dir, 'tree')
    const target = path.join(root, 'x/mnt')
    fs.mkdirSync(target, { recursive: true })
    mount(source, target, null, MountFlag.BIND)
    try {
      await expect(removeTree(root)).rejects.toMatchObject({ code: 'EBUSY', path: target })
      expect(fs.readFileSync(path.join(source, 'precious'), 'utf8')).toBe('p')
    } finally { umount2(target, 0) }
    await removeTree(root)
    expect(fs.existsSync(root)).toBe(false)
  })
})

describe('mkdirs / rmdirs', () => {
  it('make and remove each directory in order, with one errno per path and no rejection', async () => {
    const a = path.join(dir, 'a'), b = path.join(dir, 'a', 'b'), missing = path.join(dir, 'no', 'c')
    expect(await mkdirs([a, b, a, missing], 0o700)).toEqual([0, 0, os.constants.errno.EEXIST, os.constants.errno.ENOENT])
    expect(fs.statSync(b).mode & 0o777).toBe(0o700 & ~process.umask())
    fs.writeFileSync(path.join(b, 'f'), '')
    expect(await rmdirs([a, b, missing])).toEqual([os.constants.errno.ENOTEMPTY, os.constants.errno.ENOTEMPTY, os.constants.errno.ENOENT])
    fs.rmSync(path.join(b, 'f'))
    expect(await rmdirs([b, a])).toEqual([0, 0])
    expect(fs.existsSync(a)).toBe(false)
  })

  it('refuse relative paths, NUL bytes and bad modes before doing anything', async () => {
    expect(() => mkdirs(['relative'], 0o755)).toThrow(/paths\[0\] must be an absolute path/)
    expect(() => rmdirs([path.join(dir, 'x'), 'a\0b'])).toThrow(/paths\[1\]/)
    expect(() => mkdirs([path.join(dir, 'x')], 0o10000)).toThrow(/mode/)
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false)
  })
})

describe('fsBatch', () => {
  it('runs its steps in order: directories, owner, mode, a new file, a rename', async () => {
    const tmp = path.join(dir, '.tmp-x'), final = path.join(dir, 'x')
    const failed = await fsBatch([
      [FsBatchOp.MkdirExistOk, dir, 0o700],
      [FsBatchOp.Mkdir, tmp, 0o700],
      [FsBatchOp.Mkdir, path.join(tmp, 'up'), 0o755],
      [FsBatchOp.Lchown, path.join(tmp, 'up'), 1234, 5678],
      [FsBatchOp.Chmod, path.join(tmp, 'up'), 0o1751],
      [FsBatchOp.WriteNew, path.join(tmp, 'rec.json'), 0o600, 0, 'grüße\n'],
      [FsBatchOp.Rename, tmp, 0, 0, final],
    ])
    expect(failed).toBeNull()
    const up = fs.statSync(path.join(final, 'up'))
    expect([up.uid, up.gid, up.mode & 0o7777]).toEqual([1234, 5678, 0o1751])
    expect(fs.readFileSync(path.join(final, 'rec.json'), 'utf8')).toBe('grüße\n')
    expect(fs.statSync(path.join(final, 'rec.json')).mode & 0o777).toBe(0o600 & ~process.umask())
    expect(fs.existsSync(tmp)).toBe(false)
  })

  it('stops at the first failing step and says which, with its errno; WriteNew never replaces a file', async () => {
    fs.writeFileSync(path.join(dir, 'f'), 'old')
    const failed = await fsBatch([
      [FsBatchOp.Mkdir, path.join(dir, 'a'), 0o755],
      [FsBatchOp.WriteNew, path.join(dir, 'f'), 0o644, 0, 'new'],
      [FsBatchOp.Mkdir, path.join(dir, 'never'), 0o755],
    ])
    expect(failed).toEqual({ index: 1, errno: os.constants.errno.EEXIST })
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('old')
    expect(fs.existsSync(path.join(dir, 'a'))).toBe(true)
    expect(fs.existsSync(path.join(dir, 'never'))).toBe(false)
  })

  it('refuses malformed steps before running any of them', () => {
    const made = path.join(dir, 'made')
    expect(() => fsBatch([[FsBatchOp.Mkdir, made, 0o755], [9 as never, made, 0]])).toThrow(/steps\[1\]\[0\] is not an operation/)
    expect(() => fsBatch([[FsBatchOp.Mkdir, made, 0o755], [FsBatchOp.Chmod, 'relative', 0o755]])).toThrow(/steps\[1\]\[1\] must be an absolute path/)
    expect(() => fsBatch([[FsBatchOp.Chmod, made, 0o17777]])).toThrow(/must be a mode/)
    expect(fs.existsSync(made)).toBe(false)
  })
})
