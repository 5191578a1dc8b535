/**
 * The changes of a snapshot, read from its overlay upper directory, as OCI layer entries.
 *
 * overlayfs already keeps exactly a layer's worth of information in the upper directory: new
 * and modified files (copied up whole), deletions as whiteouts (character devices 0/0), and
 * directories that replaced a lower one marked opaque (`trusted.overlay.opaque=y`). So a diff
 * is a walk of that directory with two translations back to the OCI forms:
 *
 * - a whiteout `dir/name` → an empty regular file `dir/.wh.name`;
 * - an opaque directory `dir/` → the directory entry, then `dir/.wh..wh..opq`.
 *
 * This only holds while the upper directory is self-contained, which is why snapshots are
 * mounted with `redirect_dir=off` and `metacopy=off`: with redirects, a renamed lower directory
 * is an empty upper directory whose `trusted.overlay.redirect` names where its content still
 * is; with metacopy, a chmod'd lower file is an upper inode without data
 * (`trusted.overlay.metacopy`) whose bytes stay in the lower layer. Neither can be turned into
 * a layer from the upper directory alone, so finding either is `ERR_STORE_UNSUPPORTED` rather
 * than a layer that silently loses data.
 *
 * Order: depth first, a directory before its content; within a directory, the opaque marker
 * first, then whiteouts, then the other entries, each group by the byte order of the names.
 * (The OCI layer spec asks for whiteouts before their siblings; otherwise this is the order of
 * GNU tar's `--sort=name`.) Overlay's private xattrs (`trusted.overlay.*`) are dropped and so is
 * `security.selinux` (a host label, not image content: the runtime labels a container's
 * files); every other xattr — `security.capability` above all — is kept. Sockets are skipped,
 * as GNU tar does: a tar cannot hold them.
 */
import type { BigIntStats } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { lgetxattr, llistxattr } from '@ctr/native'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import type { TarEntry } from './tar-writer.js'

/** The OCI whiteout prefix and opaque-directory marker. */
export const WHITEOUT_PREFIX = '.wh.'
export const OPAQUE_MARKER = '.wh..wh..opq'

/** Options of {@link diffUpper}. */
export interface DiffOptions {
  signal?: AbortSignal
}

const OVERLAY_XATTR = 'trusted.overlay.'
const ESCAPED_OVERLAY_XATTR = 'trusted.overlay.overlay.'
/** Xattrs that make an upper directory depend on the lower layers. */
const UNSUPPORTED_XATTRS: Record<string, string> = {
  'trusted.overlay.redirect': 'a directory renamed with redirect_dir=on (its content stays in a lower layer)',
  'trusted.overlay.metacopy': 'a metadata-only copy-up made with metacopy=on (its data stays in a lower layer)',
}
/** Xattrs that are host state rather than image content. */
const DROPPED_XATTRS = new Set(['security.selinux'])

interface Child {
  name: string
  abs: string
  rel: string
  st: BigIntStats
  xattrNames: string[]
}

/** Whole seconds, rounded down (also before 1970). */
function seconds(st: BigIntStats): number {
  const ms = st.mtimeMs
  const s = ms / 1000n
  return Number(ms < 0n && ms % 1000n !== 0n ? s - 1n : s)
}

function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn))
}
function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))
}

function listXattrs(path: string): string[] {
  try {
    return llistxattr(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return []
    throw ioError('list xattrs of', path, err)
  }
}

function readXattr(path: string, name: string): Buffer | null {
  try {
    return lgetxattr(path, name)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENODATA' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') return null
    throw ioError(`read xattr ${name} of`, path, err)
  }
}

/** Whether an upper entry is a whiteout: a 0/0 character device, or an overlay "xwhiteout" (an empty file marked by xattr). */
function isWhiteout(c: Child): boolean {
  if (c.st.isCharacterDevice() && c.st.rdev === 0n) return true
  return c.st.isFile() && c.st.size === 0n && c.xattrNames.includes('trusted.overlay.whiteout')
}

function isOpaque(c: Child): boolean {
  return c.xattrNames.includes('trusted.overlay.opaque') && readXattr(c.abs, 'trusted.overlay.opaque')?.toString() === 'y'
}

function checkXattrs(c: Child): void {
  for (const name of c.xattrNames) {
    const why = UNSUPPORTED_XATTRS[name]
    if (why !== undefined) {
      throw new StoreError('ERR_STORE_UNSUPPORTED', `\`${c.rel}\` is ${why}: the upper directory does not hold the whole change, so it cannot become a layer`, {
        path: c.abs,
      })
    }
  }
}

/**
 * The xattrs that belong in the layer, sorted by name. Overlay's own (`trusted.overlay.*`) are
 * dropped — except the escaped ones: since Linux 6.7 an overlay xattr set *through* the mount
 * (a container nesting overlays of its own) is stored in the upper directory as
 * `trusted.overlay.overlay.<name>`, and is the container's data `trusted.overlay.<name>`.
 */
function contentXattrs(c: Child): [string, Buffer][] {
  const out: [string, Buffer][] = []
  for (const name of c.xattrNames) {
    if (DROPPED_XATTRS.has(name)) continue
    let outName = name
    if (name.startsWith(OVERLAY_XATTR)) {
      if (!name.startsWith(ESCAPED_OVERLAY_XATTR)) continue
      outName = OVERLAY_XATTR + name.slice(ESCAPED_OVERLAY_XATTR.length)
    }
    const value = readXattr(c.abs, name)
    if (value !== null) out.push([outName, value])
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Names of a directory, byte-sorted; a name that is not UTF-8 is refused (a tar name is text). */
async function sortedNames(abs: string, rel: string): Promise<string[]> {
  let raw: Buffer[]
  try {
    raw = await readdir(abs, { encoding: 'buffer' })
  } catch (err) {
    throw ioError('read directory', abs, err)
  }
  raw.sort(Buffer.compare)
  return raw.map((b) => {
    try {
      return utf8.decode(b)
    } catch {
      throw new StoreError('ERR_STORE_UNSUPPORTED', `\`${rel ? rel + '/' : ''}${b.toString('latin1')}\`: file names that are not UTF-8 cannot be committed`, { path: abs })
    }
  })
}

/**
 * Walks an overlay upper directory and yields the entries of the layer it amounts to (the
 * upper directory's root itself is not an entry, as in Docker's and containerd's diffs).
 * Hard links within the upper directory (one inode under several names) become a file entry
 * for the first name in walk order and link entries for the others.
 *
 * @throws StoreError `ERR_STORE_UNSUPPORTED` for redirect or metacopy xattrs and non-UTF-8
 *   names, `ERR_STORE_IO` for file-system errors, `ERR_STORE_ABORTED` when `signal` fires.
 *
 * @example
 * ```ts
 * for await (const e of diffUpper(snap.upper)) console.log(e.type, e.name)
 * // dir etc/   file etc/.wh.motd   file etc/hostname   dir var/cache/   file var/cache/.wh..wh..opq …
 * ```
 */
export async function* diffUpper(upper: string, options: DiffOptions = {}): AsyncGenerator<TarEntry> {
  const links = new Map<string, string>()
  yield* walk(upper, '', false, links, options)
}

async function* walk(abs: string, rel: string, opaque: boolean, links: Map<string, string>, options: DiffOptions): AsyncGenerator<TarEntry> {
  throwIfAborted(options.signal, 'commit')
  const children: Child[] = []
  for (const name of await sortedNames(abs, rel)) {
    const childAbs = join(abs, name)
    let st: BigIntStats
    try {
      st = await lstat(childAbs, { bigint: true })
    } catch (err) {
      throw ioError('stat', childAbs, err)
    }
    const c: Child = { name, abs: childAbs, rel: rel ? `${rel}/${name}` : name, st, xattrNames: listXattrs(childAbs) }
    checkXattrs(c)
    children.push(c)
  }

  if (opaque) yield marker(rel, OPAQUE_MARKER, await lstat(abs, { bigint: true }))
  const whiteouts = children.filter(isWhiteout)
  for (const w of whiteouts) yield marker(rel, WHITEOUT_PREFIX + w.name, w.st)

  for (const c of children) {
    if (whiteouts.includes(c)) continue
    const { st } = c
    const base = {
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: seconds(st),
    }
    if (st.isDirectory()) {
      yield { ...base, name: c.rel + '/', type: 'dir', xattrs: contentXattrs(c) }
      yield* walk(c.abs, c.rel, isOpaque(c), links, options)
      continue
    }
    if (st.isSocket()) continue
    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`
      const first = links.get(key)
      if (first !== undefined) {
        yield { ...base, name: c.rel, type: 'hardlink', linkname: first, xattrs: [] }
        continue
      }
      links.set(key, c.rel)
    }
    const xattrs = contentXattrs(c)
    if (st.isFile()) yield { ...base, name: c.rel, type: 'file', size: Number(st.size), source: c.abs, xattrs }
    else if (st.isSymbolicLink()) {
      let target: string
      try {
        target = await readlink(c.abs)
      } catch (err) {
        throw ioError('read link', c.abs, err)
      }
      yield { ...base, name: c.rel, type: 'symlink', linkname: target, xattrs }
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      yield { ...base, name: c.rel, type: st.isCharacterDevice() ? 'char' : 'block', devmajor: major(st.rdev), devminor: minor(st.rdev), xattrs }
    } else if (st.isFIFO()) yield { ...base, name: c.rel, type: 'fifo', xattrs }
  }
}

/** A whiteout or opaque marker: an empty regular file with the owner, mode and time of what it stands for. */
function marker(dirRel: string, name: string, st: BigIntStats): TarEntry {
  return {
    name: dirRel ? `${dirRel}/${name}` : name,
    type: 'file',
    mode: Number(st.mode & 0o777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: 0,
    mtime: seconds(st),
    xattrs: [],
  }
}
