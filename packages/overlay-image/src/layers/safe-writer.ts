/**
 * Writes tar entries into a layer directory so that nothing can land outside it, whatever
 * the archive says.
 *
 * How: the layer root is held as an `O_PATH` fd, and every entry's parent directory is
 * resolved from it with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symlinks that
 * earlier entries planted (`evil -> /etc`, `up -> ../../..`) resolve as if the layer were `/`
 * — the way they will resolve once the layer is mounted. The final component is then created
 * or changed with calls that never follow it (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdir`, `symlink`,
 * `link`, `mknodat`, `lchown`, `lutimes`, `lsetxattr`), through `/proc/self/fd/<parent>/<name>`
 * since Node has no `*at()` calls. Missing parents are created one component at a time with
 * `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and never through a symlink: a symlink on the way
 * must already lead to a directory inside the layer, or the entry is refused.
 *
 * Everything here is synchronous: each call is a syscall of a few microseconds on data the
 * kernel has cached, and the libuv round trip of the async form would cost more than the
 * work. The caller yields to the event loop between input chunks.
 */
import fs from 'node:fs'
import { AT_FDCWD, FileType, OpenFlag, ResolveFlag, close as closeFd, lsetxattr, makedev, mknodat, openat2 } from '@ctr/native'
import { StoreError } from '../errors.js'
import { cleanName, OPAQUE_XATTR, whiteoutOf } from './names.js'
import type { TarEntry, TarSink } from './tar-reader.js'

const O = OpenFlag
const DIR_PATH = O.O_PATH | O.O_DIRECTORY | O.O_CLOEXEC
/** Resolution of names that may go through the layer's own symlinks: chrooted to the layer. */
const IN_ROOT = ResolveFlag.IN_ROOT | ResolveFlag.NO_MAGICLINKS
/** Resolution of one component inside a directory we hold: no symlink at all. */
const BENEATH = ResolveFlag.BENEATH | ResolveFlag.NO_SYMLINKS | ResolveFlag.NO_MAGICLINKS
const NEW_FILE = O.O_WRONLY | O.O_CREAT | O.O_EXCL | O.O_NOFOLLOW | O.O_CLOEXEC
/** Open parent directories kept; bounded so a layer of any shape uses a bounded number of fds. */
const DIR_CACHE = 128

/** `/proc/self/fd/<fd>` (the object itself) or `/proc/self/fd/<fd>/<name>` (a name in a directory). */
function at(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code
}

/**
 * `openat2`, retried on `EAGAIN`: with `RESOLVE_IN_ROOT` the kernel gives up on a `..` when a
 * rename or mount anywhere raced with the lookup, and asks the caller to try again.
 */
function open2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  for (let attempt = 0; ; attempt++) {
    try {
      return openat2(dirfd, path, flags, mode, resolve)
    } catch (err) {
      if (errnoOf(err) !== 'EAGAIN' || attempt >= 16) throw err
    }
  }
}

/** The file currently receiving content. */
interface OpenFile {
  fd: number
  entry: TarEntry
  parent: number
  base: string
}

/** What the writer did, for `layer.json` and progress. */
export interface WriteStats {
  entries: number
  /** Bytes of regular-file content written. */
  bytes: number
}

/**
 * A {@link TarSink} that applies entries to a layer directory. Create it on an empty
 * directory, feed it through a `TarReader`, call {@link SafeWriter.finish} after the last
 * entry (it sets directory times) and {@link SafeWriter.close} in any case.
 *
 * @example
 * ```ts
 * const w = new SafeWriter('/var/lib/ctr/layers/.tmp-x/fs')
 * try { const r = new TarReader(w); for (const c of chunks) r.write(c); r.finish(); w.finish() }
 * finally { w.close() }
 * ```
 */
export class SafeWriter implements TarSink {
  readonly #root: number
  readonly #rootPath: string
  /**
   * Parent directories by cleaned path (`usr/bin`), least recently used first, with the entry
   * that last used each: fds handed out for the current entry are never evicted under it.
   */
  readonly #dirs = new Map<string, { fd: number; entry: number }>()
  /** Directory times, set at the end: creating children changes a directory's mtime. */
  readonly #dirTimes = new Map<string, [atime: number, mtime: number]>()
  readonly #euid = process.geteuid?.() ?? 0
  readonly #egid = process.getegid?.() ?? 0
  #file: OpenFile | undefined
  #closed = false
  readonly stats: WriteStats = { entries: 0, bytes: 0 }

  constructor(rootPath: string) {
    if (!fs.existsSync('/proc/self/fd')) {
      throw new StoreError('ERR_STORE_UNSUPPORTED', 'unpacking layers needs /proc mounted (names are resolved through /proc/self/fd)')
    }
    this.#rootPath = rootPath
    try {
      this.#root = openat2(AT_FDCWD, rootPath, DIR_PATH | O.O_NOFOLLOW, 0, 0)
    } catch (err) {
      if (errnoOf(err) === 'ENOSYS') {
        throw new StoreError('ERR_STORE_UNSUPPORTED', 'unpacking layers needs openat2(2) with RESOLVE_IN_ROOT: Linux 5.6 or later', { cause: err })
      }
      throw this.#io('open the layer directory', rootPath, err)
    }
  }

  entry(e: TarEntry): void {
    this.stats.entries++
    const parts = cleanName(e.name, 'name', e.name)
    if (parts.length === 0) return this.#rootEntry(e)
    const base = parts[parts.length - 1]!
    const dirParts = parts.slice(0, -1)
    const wh = whiteoutOf(base, e.name)
    if (wh !== undefined) {
      if (wh.kind === 'ignore') return
      const dir = this.#dir(dirParts, true, e.name)
      if (wh.kind === 'opaque') return this.#call('mark the directory opaque', e, () => lsetxattr(`${at(dir)}/.`, OPAQUE_XATTR, Buffer.from('y')))
      // `.wh.<name>` becomes what overlayfs takes for a deletion: a 0/0 character device.
      return this.#create(dirParts, wh.name, e, (parent, name) => {
        mknodat(parent, name, FileType.S_IFCHR, makedev(0, 0))
        this.#call('chown', e, () => fs.lchownSync(at(parent, name), e.uid, e.gid))
        this.#call('set times', e, () => fs.lutimesSync(at(parent, name), e.atime ?? e.mtime, e.mtime))
      })
    }
    switch (e.kind) {
      case 'file':
        return this.#regular(dirParts, base, e)
      case 'dir':
        return this.#directory(parts, dirParts, base, e)
      case 'symlink':
        return this.#create(dirParts, base, e, (parent, name) => {
          fs.symlinkSync(e.linkname, at(parent, name))
          this.#meta(parent, name, e, { chmod: false, follow: false })
        })
      case 'hardlink':
        return this.#hardlink(parts, dirParts, base, e)
      case 'char':
      case 'block':
      case 'fifo': {
        const type = e.kind === 'char' ? FileType.S_IFCHR : e.kind === 'block' ? FileType.S_IFBLK : FileType.S_IFIFO
        const dev = e.kind === 'fifo' ? 0 : makedev(e.devmajor, e.devminor)
        return this.#create(dirParts, base, e, (parent, name) => {
          mknodat(parent, name, type | e.mode, dev)
          this.#meta(parent, name, e, { chmod: true, follow: false })
        })
      }
    }
  }

  data(chunk: Buffer): void {
    const f = this.#file!
    let off = 0
    while (off < chunk.length) {
      try {
        off += fs.writeSync(f.fd, chunk, off, chunk.length - off)
      } catch (err) {
        throw this.#io('write', f.entry.name, err)
      }
    }
    this.stats.bytes += chunk.length
  }

  endEntry(): void {
    const f = this.#file
    if (f === undefined) return
    this.#file = undefined
    const e = f.entry
    try {
      // Order matters: chown clears set-uid bits and security.capability, and writing the
      // content would clear them too, so owner, then mode, then xattrs, then times.
      if (e.uid !== this.#euid || e.gid !== this.#egid) this.#call('chown', e, () => fs.fchownSync(f.fd, e.uid, e.gid))
      this.#call('chmod', e, () => fs.fchmodSync(f.fd, e.mode))
      this.#xattrs(at(f.parent, f.base), e)
      this.#call('set times', e, () => fs.futimesSync(f.fd, e.atime ?? e.mtime, e.mtime))
    } finally {
      closeFd(f.fd)
    }
  }

  /** Sets the directories' times, now that nothing more will be created in them. */
  finish(): void {
    for (const [key, [atime, mtime]] of this.#dirTimes) {
      let fd: number
      try {
        fd = key === '' ? this.#root : open2(this.#root, key, DIR_PATH | O.O_NOFOLLOW, 0, IN_ROOT)
      } catch {
        continue // replaced since by something that is not a directory
      }
      try {
        fs.utimesSync(at(fd), atime, mtime)
      } catch (err) {
        throw this.#io('set times of', key, err)
      } finally {
        if (fd !== this.#root) closeFd(fd)
      }
    }
    this.#dirTimes.clear()
  }

  /** Closes every fd the writer holds. Idempotent; call it on success and failure alike. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#file !== undefined) {
      closeFd(this.#file.fd)
      this.#file = undefined
    }
    this.#flushDirs()
    closeFd(this.#root)
  }

  // -------------------------------------------------------------------------------------
  // Entries

  /** `.` or `./`: the layer root's own attributes (containerd applies them too). */
  #rootEntry(e: TarEntry): void {
    if (e.kind !== 'dir') {
      throw new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${e.name}\`: a ${e.kind} cannot replace the layer root`, { path: e.name })
    }
    const self = `${at(this.#root)}/.`
    this.#call('chown', e, () => fs.lchownSync(self, e.uid, e.gid))
    this.#call('chmod', e, () => fs.chmodSync(self, e.mode))
    this.#xattrs(self, e)
    this.#dirTimes.set('', [e.atime ?? e.mtime, e.mtime])
  }

  #regular(dirParts: string[], base: string, e: TarEntry): void {
    this.#create(dirParts, base, e, (parent, name) => {
      const fd = open2(parent, name, NEW_FILE, 0o600, BENEATH)
      this.#file = { fd, entry: e, parent, base: name }
    })
  }

  #directory(parts: string[], dirParts: string[], base: string, e: TarEntry): void {
    let parent = this.#dir(dirParts, true, e.name)
    const path = at(parent, base)
    try {
      fs.mkdirSync(path, 0o700)
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw this.#io('mkdir', e.name, err)
      // A directory over a directory merges; over anything else it replaces.
      if (!fs.lstatSync(path).isDirectory()) {
        parent = this.#remove(dirParts, base, e)
        this.#call('mkdir', e, () => fs.mkdirSync(at(parent, base), 0o700))
      }
    }
    this.#meta(parent, base, e, { chmod: true, follow: true })
    this.#dirTimes.set(parts.join('/'), [e.atime ?? e.mtime, e.mtime])
  }

  #hardlink(parts: string[], dirParts: string[], base: string, e: TarEntry): void {
    const target = cleanName(e.linkname, 'hardlink target', e.name)
    if (target.length === 0) throw new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${e.name}\`: hardlink to the layer root`, { path: e.name })
    if (target.join('/') === parts.join('/')) return // a link to itself: nothing to do
    const tbase = target[target.length - 1]!
    const tdir = this.#dir(target.slice(0, -1), false, e.name)
    const tpath = at(tdir, tbase)
    const st = fs.lstatSync(tpath, { throwIfNoEntry: false })
    if (st === undefined) {
      throw new StoreError('ERR_STORE_BAD_TAR', `entry \`${e.name}\`: hardlink target \`${e.linkname}\` is not in the layer (hardlinks point to earlier entries)`, { path: e.name })
    }
    if (st.isDirectory()) {
      throw new StoreError('ERR_STORE_BAD_TAR', `entry \`${e.name}\`: hardlink target \`${e.linkname}\` is a directory`, { path: e.name })
    }
    // link(2) does not follow the final component, and the target's directory was resolved
    // inside the layer: the new name can only share an inode of this layer.
    this.#create(dirParts, base, e, (parent, name) => fs.linkSync(at(this.#dir(target.slice(0, -1), false, e.name), tbase), at(parent, name)))
  }

  /**
   * Creates a non-directory at `dirParts/base` with `make`; when the name exists (an earlier
   * entry of this layer), removes it and tries once more — later entries replace earlier ones.
   */
  #create(dirParts: string[], base: string, e: TarEntry, make: (parent: number, name: string) => void): void {
    let parent = this.#dir(dirParts, true, e.name)
    try {
      make(parent, base)
      return
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw this.#wrap(err, e)
    }
    parent = this.#remove(dirParts, base, e)
    try {
      make(parent, base)
    } catch (err) {
      throw this.#wrap(err, e)
    }
  }

  /**
   * Removes what an earlier entry left at `dirParts/base`. When that was a directory or a
   * symlink, every cached directory fd may have been resolved through it, so the cache is
   * dropped; returns the parent's fd, resolved again.
   */
  #remove(dirParts: string[], base: string, e: TarEntry): number {
    const parent = this.#dir(dirParts, true, e.name)
    const path = at(parent, base)
    const st = fs.lstatSync(path, { throwIfNoEntry: false })
    if (st === undefined) return parent
    try {
      if (st.isDirectory()) fs.rmSync(path, { recursive: true, force: true })
      else fs.unlinkSync(path)
    } catch (err) {
      throw this.#io('replace', e.name, err)
    }
    if (!st.isDirectory() && !st.isSymbolicLink()) return parent
    const key = [...dirParts, base].join('/')
    for (const k of this.#dirTimes.keys()) if (k === key || k.startsWith(`${key}/`)) this.#dirTimes.delete(k)
    this.#flushDirs()
    return this.#dir(dirParts, true, e.name)
  }

  /** Owner, mode, xattrs and (for non-directories) times of a name just created. */
  #meta(parent: number, name: string, e: TarEntry, how: { chmod: boolean; follow: boolean }): void {
    const path = at(parent, name)
    this.#call('chown', e, () => fs.lchownSync(path, e.uid, e.gid))
    // chmod follows symlinks: only called for names this writer just made (devices, fifos)
    // or found to be directories, never for symlinks.
    if (how.chmod) this.#call('chmod', e, () => fs.chmodSync(path, e.mode))
    this.#xattrs(path, e)
    if (e.kind !== 'dir') this.#call('set times', e, () => fs.lutimesSync(path, e.atime ?? e.mtime, e.mtime))
  }

  #xattrs(path: string, e: TarEntry): void {
    if (e.xattrs === undefined) return
    for (const [name, value] of e.xattrs) {
      // overlayfs's own attributes (opaque, redirect, metacopy, origin) would change what a
      // mount shows; only the whiteout conversion here may set them.
      if (name.startsWith('trusted.overlay.')) continue
      try {
        lsetxattr(path, name, value)
      } catch (err) {
        const code = errnoOf(err)
        // A file system without that namespace, as containerd tolerates; and user.* exists
        // only on regular files and directories.
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') continue
        if (code === 'EPERM' && name.startsWith('user.') && e.kind !== 'file' && e.kind !== 'dir') continue
        throw this.#io(`set xattr ${name} on`, e.name, err)
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Directories

  /**
   * The fd of a directory of the layer (cached; do not close it), resolved in root.
   * `create`: make missing components (never through a symlink); otherwise a missing one is
   * an error about a hardlink target.
   */
  #dir(parts: string[], create: boolean, entry: string): number {
    if (parts.length === 0) return this.#root
    const key = parts.join('/')
    const now = this.stats.entries
    const hit = this.#dirs.get(key)
    if (hit !== undefined) {
      this.#dirs.delete(key)
      hit.entry = now
      this.#dirs.set(key, hit)
      return hit.fd
    }
    let fd: number
    try {
      fd = open2(this.#root, key, DIR_PATH, 0, IN_ROOT)
    } catch (err) {
      const code = errnoOf(err)
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw this.#dirError(err, key, entry)
      fd = this.#walk(parts, create, entry)
    }
    while (this.#dirs.size >= DIR_CACHE) {
      const [oldKey, old] = this.#dirs.entries().next().value as [string, { fd: number; entry: number }]
      if (old.entry === now) break
      this.#dirs.delete(oldKey)
      closeFd(old.fd)
    }
    this.#dirs.set(key, { fd, entry: now })
    return fd
  }

  /** Resolves `parts` one component at a time, creating what is missing when allowed. */
  #walk(parts: string[], create: boolean, entry: string): number {
    let cur = this.#root
    try {
      for (let i = 0; i < parts.length; i++) {
        const name = parts[i]!
        let next: number
        try {
          next = open2(cur, name, DIR_PATH | O.O_NOFOLLOW, 0, BENEATH)
        } catch (err) {
          const code = errnoOf(err)
          const prefix = parts.slice(0, i + 1).join('/')
          if (code === 'ENOENT') {
            if (!create) {
              throw new StoreError('ERR_STORE_BAD_TAR', `entry \`${entry}\`: hardlink target directory \`${prefix}\` is not in the layer`, { path: entry })
            }
            // An implicit parent, as GNU tar makes them: root's, 0755, the time of unpacking.
            try {
              fs.mkdirSync(at(cur, name), 0o755)
              next = open2(cur, name, DIR_PATH | O.O_NOFOLLOW, 0, BENEATH)
            } catch (e2) {
              throw this.#io('mkdir', prefix, e2)
            }
          } else if (code === 'ELOOP' || code === 'ENOTDIR') {
            const st = fs.lstatSync(at(cur, name))
            if (!st.isSymbolicLink()) {
              throw new StoreError('ERR_STORE_BAD_TAR', `entry \`${entry}\`: \`${prefix}\` is not a directory`, { path: entry })
            }
            // A symlink an earlier entry made: follow it only to a directory that exists
            // inside the layer (resolved as if the layer were /).
            try {
              next = open2(this.#root, prefix, DIR_PATH, 0, IN_ROOT)
            } catch {
              throw new StoreError(
                'ERR_STORE_UNSAFE_TAR',
                `entry \`${entry}\`: \`${prefix}\` is a symlink that does not lead to a directory inside the layer (directories are not created through symlinks)`,
                { path: entry },
              )
            }
          } else {
            throw this.#dirError(err, prefix, entry)
          }
        }
        if (cur !== this.#root) closeFd(cur)
        cur = next
      }
      return cur
    } catch (err) {
      if (cur !== this.#root) closeFd(cur)
      throw err
    }
  }

  #flushDirs(): void {
    for (const d of this.#dirs.values()) closeFd(d.fd)
    this.#dirs.clear()
  }

  #dirError(err: unknown, key: string, entry: string): StoreError {
    if (errnoOf(err) === 'EXDEV') {
      return new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${entry}\`: resolving \`${key}\` would leave the layer`, { path: entry, cause: err })
    }
    if (errnoOf(err) === 'ELOOP') {
      return new StoreError('ERR_STORE_BAD_TAR', `entry \`${entry}\`: too many levels of symlinks resolving \`${key}\``, { path: entry, cause: err })
    }
    return this.#io('resolve', key, err)
  }

  // -------------------------------------------------------------------------------------
  // Errors

  #call(what: string, e: TarEntry, f: () => void): void {
    try {
      f()
    } catch (err) {
      throw this.#io(what, e.name, err)
    }
  }

  #wrap(err: unknown, e: TarEntry): unknown {
    return err instanceof StoreError ? err : this.#io(`create ${e.kind}`, e.name, err)
  }

  #io(what: string, name: string, err: unknown): StoreError {
    if (err instanceof StoreError) return err
    const code = errnoOf(err)
    return new StoreError('ERR_STORE_IO', `entry \`${name}\`: ${what}: ${code ?? String(err)}`, { path: name, cause: err })
  }

  /** The layer directory this writer fills. */
  get rootPath(): string {
    return this.#rootPath
  }
}
