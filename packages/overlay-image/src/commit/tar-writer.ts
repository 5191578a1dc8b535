/**
 * A deterministic tar writer for layers: the same entries always give the same bytes.
 *
 * The format is POSIX ustar with pax extended headers (`x`) where ustar cannot hold a value:
 * names and link targets over 100/255 bytes or not ASCII, ids and sizes too big for their
 * octal fields, and extended attributes (`SCHILY.xattr.<name>`, as GNU tar, bsdtar, Go's
 * archive/tar and so containerd and Docker read and write them). The archive ends with the two
 * zero blocks of the standard, with no padding to a record size (Go's archive/tar does not pad
 * either), and user and group names are left empty: a layer carries numeric ids only, never
 * the names of the machine that committed it.
 *
 * Headers are encoded by node-tar's `Header` (field layout, octal and base-256 numbers,
 * the ustar prefix split, the checksum), and pax records for the standard fields by node-tar's
 * `Pax`. Two things node-tar cannot do are written here: `Pax` builds its body as a JS string,
 * which cannot carry an xattr's value (arbitrary bytes; GNU tar stores them raw), so the body
 * is assembled as bytes — node-tar's records followed by `SCHILY.xattr.*` records; and `Pax`
 * would name the extended header after the entry verbatim, so the header is made here with a
 * plain ASCII name.
 */
import { open } from 'node:fs/promises'
import { posix } from 'node:path'
import { Header, Pax, type HeaderData } from 'tar'
import { StoreError, ioError, throwIfAborted } from '../errors.js'

/** The kinds of entries a layer holds. */
export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'

/** One entry of a layer tar. */
export interface TarEntry {
  /** The name in the archive: relative, `/`-separated, no `./` prefix; directories end with `/`. */
  name: string
  type: TarEntryType
  /** Permission bits with set-uid, set-gid and sticky (`mode & 0o7777`). */
  mode: number
  uid: number
  gid: number
  /** Content bytes (regular files only; 0 otherwise). */
  size: number
  /** Modification time, whole seconds since the epoch. */
  mtime: number
  /** Symlink target, or the archive name a hard link points to. */
  linkname?: string
  devmajor?: number
  devminor?: number
  /** Extended attributes, in the order to write them (sorted by name for determinism). */
  xattrs?: [name: string, value: Buffer][]
  /** Where to read a regular file's content from. */
  source?: string
}

/** Options of {@link tarStream}. */
export interface TarWriterOptions {
  /**
   * One modification time for every entry (like `SOURCE_DATE_EPOCH` with BuildKit's
   * timestamp rewriting), for layers that are byte-identical whenever their content is.
   * Sub-second parts are dropped.
   */
  mtime?: Date
  signal?: AbortSignal
  /** Called after each entry has been written, with the archive's length so far. */
  onEntry?: (entry: TarEntry, bytes: number) => void
}

const BLOCK = 512
/** Files up to this size are read whole and leave as one chunk with their header. */
const SMALL_FILE = 64 * 1024
/** Larger files are read in chunks of this size. */
const CHUNK = 1024 * 1024
const ZERO = Buffer.alloc(BLOCK * 2)

const TYPE_NAMES: Record<TarEntryType, NonNullable<HeaderData['type']>> = {
  file: 'File',
  dir: 'Directory',
  symlink: 'SymbolicLink',
  hardlink: 'Link',
  char: 'CharacterDevice',
  block: 'BlockDevice',
  fifo: 'FIFO',
}

/** The padding after `size` bytes of content. */
function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK
}

/**
 * One pax record, `"<length> <key>=<value>\n"`, where the length counts itself. The value is
 * bytes, so binary xattr values go in unchanged.
 *
 * @example
 * ```ts
 * paxRecord('path', Buffer.from('a')).toString() // '9 path=a\n'
 * ```
 */
export function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(key) + value.length + 3 // ' ', '=', '\n'
  let digits = String(rest).length
  if (String(rest + digits).length > digits) digits++
  const len = rest + digits
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')])
}

/**
 * The header blocks of an entry: a pax extended header when needed, then the ustar header.
 * Throws `ERR_STORE_UNSUPPORTED` for an xattr name a pax record cannot carry (one with `=`).
 *
 * @example
 * ```ts
 * const blocks = entryHeader({ name: 'etc/', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 })
 * blocks.length // 512
 * ```
 */
export function entryHeader(entry: TarEntry): Buffer {
  const mtime = new Date(entry.mtime * 1000)
  const isDevice = entry.type === 'char' || entry.type === 'block'
  const data: HeaderData = {
    path: entry.name,
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === 'file' ? entry.size : 0,
    mtime,
    type: TYPE_NAMES[entry.type],
    linkpath: entry.linkname ?? '',
    uname: '',
    gname: '',
    devmaj: isDevice ? (entry.devmajor ?? 0) : 0,
    devmin: isDevice ? (entry.devminor ?? 0) : 0,
  }
  const header = new Header(data)
  const block = Buffer.alloc(BLOCK)
  const needPax = header.encode(block, 0)
  if (entry.type === 'dir' && !needPax) keepDirSlash(block)

  const records: Buffer[] = []
  if (needPax) {
    // node-tar's own choice of fields (path, linkpath, ids, size, mtime): only the ones set.
    const pax = new Pax({
      path: entry.name,
      ...(entry.linkname ? { linkpath: entry.linkname } : {}),
      uid: entry.uid,
      gid: entry.gid,
      size: data.size!,
      mtime,
    })
    records.push(Buffer.from(pax.encodeBody(), 'utf8'))
  }
  for (const [name, value] of entry.xattrs ?? []) {
    if (name.includes('=') || name.includes('\0')) {
      throw new StoreError('ERR_STORE_UNSUPPORTED', `\`${entry.name}\`: extended attribute name ${JSON.stringify(name)} cannot be stored in a pax header`, { path: entry.name })
    }
    records.push(paxRecord(`SCHILY.xattr.${name}`, value))
  }
  if (records.length === 0) return block

  const body = Buffer.concat(records)
  const base = posix.basename(entry.name).replace(/[^\x20-\x7e]/g, '_')
  const ext = Buffer.alloc(BLOCK)
  new Header({
    path: `PaxHeader/${base}`.slice(0, 99),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime,
    type: 'ExtendedHeader',
    linkpath: '',
    uname: '',
    gname: '',
    devmaj: 0,
    devmin: 0,
  }).encode(ext, 0)
  return Buffer.concat([ext, body, Buffer.alloc(padding(body.length)), block])
}

/**
 * node-tar splits a long name between the ustar `prefix` and `name` fields with `dirname` and
 * `basename`, which drop a directory's trailing slash. Readers go by the type flag, but every
 * other directory entry of ours ends with `/` (as GNU tar's and Go's do), so put it back when
 * the name field has room, and redo the checksum.
 */
function keepDirSlash(block: Buffer): void {
  const nul = block.indexOf(0, 0)
  const len = nul < 0 || nul > 100 ? 100 : nul
  if (len === 0 || len >= 100 || block[len - 1] === 0x2f) return
  block[len] = 0x2f
  block.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += block[i]!
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii')
}

/** Reads exactly `size` bytes of a file, in chunks; fails if it is shorter now. */
async function* fileContent(entry: TarEntry): AsyncGenerator<Buffer> {
  const src = entry.source!
  let fh
  try {
    fh = await open(src, 'r')
  } catch (err) {
    throw ioError(`read \`${entry.name}\` from`, src, err)
  }
  try {
    let left = entry.size
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, CHUNK))
      let filled = 0
      while (filled < buf.length) {
        let n: number
        try {
          ;({ bytesRead: n } = await fh.read(buf, filled, buf.length - filled, entry.size - left + filled))
        } catch (err) {
          throw ioError(`read \`${entry.name}\` from`, src, err)
        }
        if (n === 0) {
          throw new StoreError('ERR_STORE_IO', `read \`${entry.name}\` from \`${src}\`: the file shrank while it was being read (${entry.size} bytes expected)`, { path: src })
        }
        filled += n
      }
      left -= buf.length
      yield buf
    }
  } finally {
    await fh.close().catch(() => {})
  }
}

/**
 * Writes entries as a tar stream (chunks of bytes), reading regular files' content from their
 * `source`. A file that shrank since its entry was made fails with `ERR_STORE_IO`; one that
 * grew is cut at its recorded size, so the archive stays consistent.
 *
 * @example
 * ```ts
 * const tar = Readable.from(tarStream(diffUpper(upper), { mtime: new Date(0) }))
 * await pipeline(tar, createWriteStream('layer.tar'))
 * ```
 */
export async function* tarStream(entries: AsyncIterable<TarEntry> | Iterable<TarEntry>, options: TarWriterOptions = {}): AsyncGenerator<Buffer> {
  const fixed = options.mtime === undefined ? undefined : Math.floor(options.mtime.getTime() / 1000)
  if (fixed !== undefined && !Number.isFinite(fixed)) {
    throw new StoreError('ERR_STORE_INVALID', 'mtime: not a valid date', { field: 'mtime' })
  }
  let bytes = 0
  for await (const e of entries) {
    throwIfAborted(options.signal, 'write layer')
    const entry = fixed === undefined ? e : { ...e, mtime: fixed }
    const header = entryHeader(entry)
    const size = entry.type === 'file' ? entry.size : 0
    if (size === 0) {
      yield header
    } else if (size <= SMALL_FILE) {
      const parts = [header]
      for await (const chunk of fileContent(entry)) parts.push(chunk)
      parts.push(ZERO.subarray(0, padding(size)))
      yield Buffer.concat(parts)
    } else {
      yield header
      for await (const chunk of fileContent(entry)) {
        throwIfAborted(options.signal, 'write layer')
        yield chunk
      }
      const pad = padding(size)
      if (pad > 0) yield Buffer.alloc(pad)
    }
    bytes += header.length + size + padding(size)
    options.onEntry?.(entry, bytes)
  }
  yield Buffer.from(ZERO)
}
