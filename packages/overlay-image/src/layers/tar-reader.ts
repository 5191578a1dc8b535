/**
 * A strict, push-style tar reader for layer tarballs: ustar, GNU and pax (POSIX.1-2001) as
 * Go's `archive/tar` reads them, since Go wrote nearly every layer there is (Docker, BuildKit,
 * containerd, umoci). Bytes go in with {@link TarReader.write}; entries come out synchronously
 * through a {@link TarSink}, with their content as slices of the input (no copy).
 *
 * Why not node-tar's `Parser`: it decodes pax records chunk by chunk as UTF-8 and drops every
 * key it does not know, so binary `SCHILY.xattr.*` values such as `security.capability` come
 * out corrupted (any byte ≥ 0x80 turns into U+FFFD) or not at all; its `Header` does not read
 * the device numbers of GNU-format headers (a GNU tar of `/dev/null` would become 0/0, which
 * overlayfs takes for a whiteout), parses numbers leniently (`parseInt`), prefixes a pax `path`
 * with the ustar prefix field, and in non-strict mode skips bad headers and oversized pax
 * headers silently — the last one lets a tar say one name to us and another to other tools.
 * Here every malformed header is a `StoreError` (`ERR_STORE_BAD_TAR`), unsupported entry kinds
 * are `ERR_STORE_UNSUPPORTED`, and node-tar is kept as the oracle the tests compare against.
 */
import { StoreError } from '../errors.js'

/** The kinds of entries a layer may hold. */
export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'

/** One entry's header, after pax and GNU long-name records were applied. */
export interface TarEntry {
  /** The name as archived (not cleaned): `./usr/bin/env`, `etc/`, … */
  name: string
  kind: EntryKind
  /** Permission bits with set-uid, set-gid and sticky (`& 0o7777`). */
  mode: number
  uid: number
  gid: number
  /** Bytes of content that follow (regular files only; 0 for the others). */
  size: number
  /** Seconds since the epoch; fractional when a pax record gave nanoseconds. */
  mtime: number
  /** From a pax `atime` record, when there was one. */
  atime: number | undefined
  /** Symlink target or hardlink target name ('' for other kinds). */
  linkname: string
  devmajor: number
  devminor: number
  /** Extended attributes from `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` records, in order. */
  xattrs: Map<string, Buffer> | undefined
  /** Byte offset of the entry's first header (pax or GNU records included) in the tar. */
  offset: number
}

/** Where a {@link TarReader} delivers entries. Called synchronously, in archive order. */
export interface TarSink {
  /** A new entry; for files, `data` calls follow with exactly `size` bytes, then `endEntry`. */
  entry(e: TarEntry): void
  /** Content of the current file. The buffer is only valid during the call. */
  data(chunk: Buffer): void
  /** The current entry is complete (called for every entry, with or without content). */
  endEntry(): void
}

/** Sanity limits; each one exceeded is `ERR_STORE_BAD_TAR`. */
export interface TarLimits {
  /** Largest pax or GNU long-name record (default 1 MiB, as Go's `archive/tar`). */
  maxMetaSize: number
  /** Longest name or link target in bytes (default 4096, Linux's PATH_MAX). */
  maxPathLength: number
  /**
   * The size of the whole tar when it is known in advance (an uncompressed blob): an entry
   * claiming more content than could follow is refused at its header, before anything is written.
   */
  totalSize: number | undefined
}

const BLOCK = 512
const DEFAULT_LIMITS: TarLimits = { maxMetaSize: 1 << 20, maxPathLength: 4096, totalSize: undefined }

function bad(message: string, path?: string): StoreError {
  return new StoreError('ERR_STORE_BAD_TAR', message, path === undefined ? {} : { path })
}

/**
 * A numeric header field: NUL/space-terminated octal, or base-256 (GNU and star) when the
 * first byte has its high bit set, exactly as Go reads them. `allowNegative` only for mtime.
 */
function numeric(b: Buffer, off: number, len: number, field: string, at: number, allowNegative = false): number {
  const first = b[off]!
  if (first & 0x80) {
    // Base-256: big-endian two's complement of the remaining bits.
    const negative = (first & 0x40) !== 0
    let v = 0
    for (let i = 0; i < len; i++) {
      let byte = b[off + i]!
      if (negative) byte ^= 0xff
      if (i === 0) byte &= 0x7f
      v = v * 256 + byte
      if (v > Number.MAX_SAFE_INTEGER) throw bad(`header at byte ${at}: ${field} does not fit in a safe integer`)
    }
    if (negative) {
      if (!allowNegative) throw bad(`header at byte ${at}: negative ${field}`)
      // The bytes were inverted: the value is ^v, that is -v - 1.
      return -v - 1
    }
    return v
  }
  // Octal, possibly padded with leading spaces or NULs and ended by space or NUL.
  let i = off
  const end = off + len
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++
  let v = 0
  let digits = 0
  for (; i < end; i++) {
    const c = b[i]!
    if (c === 0x20 || c === 0) break
    if (c < 0x30 || c > 0x37) throw bad(`header at byte ${at}: ${field} is not an octal number`)
    v = v * 8 + (c - 0x30)
    digits++
  }
  // After the terminator only more terminators may follow.
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) throw bad(`header at byte ${at}: ${field} is not an octal number`)
  if (v > Number.MAX_SAFE_INTEGER) throw bad(`header at byte ${at}: ${field} does not fit in a safe integer`)
  return digits === 0 ? 0 : v
}

/** A NUL-terminated string field, which must be UTF-8 (Linux names are bytes; we refuse to guess). */
function text(b: Buffer, off: number, len: number, field: string, at: number): string {
  let end = b.indexOf(0, off)
  if (end < 0 || end > off + len) end = off + len
  return utf8(b.subarray(off, end), field, at)
}

function utf8(bytes: Buffer, field: string, at: number): string {
  const s = bytes.toString('utf8')
  // A round trip detects invalid sequences without a second decoder.
  if (s.includes('\uFFFD') && !Buffer.from(s, 'utf8').equals(bytes)) {
    throw new StoreError('ERR_STORE_UNSUPPORTED', `header at byte ${at}: ${field} is not UTF-8 (names in other encodings are not supported)`)
  }
  return s
}

function isZeroBlock(b: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK; i += 8) {
    if (b.readBigUInt64LE(i) !== 0n) return false
  }
  return true
}

/** Header checksum: the unsigned sum of the block with the checksum field as spaces (signed sums are accepted too, as Go does). */
function checksumOk(b: Buffer, off: number, at: number): boolean {
  const stored = numeric(b, off + 148, 8, 'checksum', at)
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[off + i]!
    unsigned += c
    signed += c > 127 ? c - 256 : c
  }
  return stored === unsigned || stored === signed
}

/** Pax records for the next entry: standard keys decoded, xattrs kept as bytes. */
interface PaxRecords {
  path?: string
  linkpath?: string
  size?: number
  uid?: number
  gid?: number
  mtime?: number
  atime?: number
  devmajor?: number
  devminor?: number
  xattrs?: Map<string, Buffer>
}

function paxInteger(v: Buffer, key: string, at: number): number {
  const s = v.toString('latin1')
  if (!/^[0-9]{1,16}$/.test(s) || !Number.isSafeInteger(Number(s))) throw bad(`pax header at byte ${at}: ${key}=${s.slice(0, 40)} is not a non-negative integer`)
  return Number(s)
}

function paxTime(v: Buffer, key: string, at: number): number {
  const s = v.toString('latin1')
  if (!/^-?[0-9]{1,12}(\.[0-9]*)?$/.test(s)) throw bad(`pax header at byte ${at}: ${key}=${s.slice(0, 40)} is not a time`)
  return Number(s)
}

/** `%XX` escapes of libarchive's xattr names. */
function percentDecode(s: string, at: number): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw bad(`pax header at byte ${at}: bad LIBARCHIVE.xattr name \`${s.slice(0, 80)}\``)
  }
}

/**
 * Parses a pax extended header body: records `"<len> <key>=<value>\n"`, where `len` counts the
 * whole record. Values are bytes (xattr values are binary and may hold newlines or NULs).
 */
function parsePax(body: Buffer, into: PaxRecords, at: number): void {
  let pos = 0
  while (pos < body.length) {
    // Some writers pad the body with NULs; the rest must then be NULs too.
    if (body[pos] === 0) {
      for (let i = pos; i < body.length; i++) if (body[i] !== 0) throw bad(`pax header at byte ${at}: garbage after a NUL`)
      break
    }
    const sp = body.indexOf(0x20, pos)
    if (sp < 0 || sp - pos > 8) throw bad(`pax header at byte ${at}: malformed record`)
    const lenText = body.toString('latin1', pos, sp)
    if (!/^[1-9][0-9]*$/.test(lenText)) throw bad(`pax header at byte ${at}: malformed record length \`${lenText}\``)
    const len = Number(lenText)
    const end = pos + len
    if (end > body.length || len < sp - pos + 3 || body[end - 1] !== 0x0a) throw bad(`pax header at byte ${at}: malformed record`)
    const eq = body.indexOf(0x3d, sp + 1)
    if (eq < 0 || eq >= end - 1 || eq === sp + 1) throw bad(`pax header at byte ${at}: record without a key`)
    const key = utf8(body.subarray(sp + 1, eq), 'pax key', at)
    const value = body.subarray(eq + 1, end - 1)
    pos = end
    applyPax(into, key, value, at)
  }
}

function applyPax(into: PaxRecords, key: string, value: Buffer, at: number): void {
  if (key.startsWith('SCHILY.xattr.')) {
    const name = key.slice('SCHILY.xattr.'.length)
    if (name === '') throw bad(`pax header at byte ${at}: empty xattr name`)
    ;(into.xattrs ??= new Map()).set(name, Buffer.from(value))
    return
  }
  if (key.startsWith('LIBARCHIVE.xattr.')) {
    const name = percentDecode(key.slice('LIBARCHIVE.xattr.'.length), at)
    if (name === '') throw bad(`pax header at byte ${at}: empty xattr name`)
    const b64 = value.toString('latin1')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw bad(`pax header at byte ${at}: LIBARCHIVE.xattr.${name} is not base64`)
    ;(into.xattrs ??= new Map()).set(name, Buffer.from(b64, 'base64'))
    return
  }
  if (key.startsWith('GNU.sparse.')) {
    throw new StoreError('ERR_STORE_UNSUPPORTED', `pax header at byte ${at}: GNU sparse files are not supported`)
  }
  // An empty value unsets a standard key (POSIX pax): the ustar field applies again.
  const empty = value.length === 0
  switch (key) {
    case 'path':
      if (empty) delete into.path
      else into.path = utf8(value, 'pax path', at)
      break
    case 'linkpath':
      if (empty) delete into.linkpath
      else into.linkpath = utf8(value, 'pax linkpath', at)
      break
    case 'size':
      if (empty) delete into.size
      else into.size = paxInteger(value, key, at)
      break
    case 'uid':
      if (empty) delete into.uid
      else into.uid = paxInteger(value, key, at)
      break
    case 'gid':
      if (empty) delete into.gid
      else into.gid = paxInteger(value, key, at)
      break
    case 'mtime':
      if (empty) delete into.mtime
      else into.mtime = paxTime(value, key, at)
      break
    case 'atime':
      if (empty) delete into.atime
      else into.atime = paxTime(value, key, at)
      break
    case 'SCHILY.devmajor':
      if (empty) delete into.devmajor
      else into.devmajor = paxInteger(value, key, at)
      break
    case 'SCHILY.devminor':
      if (empty) delete into.devminor
      else into.devminor = paxInteger(value, key, at)
      break
    default:
      // ctime, uname, gname, charset, comment, hdrcharset, SCHILY.fflags, vendor keys: not
      // part of what a layer means (owners are numeric in images).
      break
  }
}

type State = 'header' | 'body' | 'meta' | 'skip' | 'eof'

/**
 * Reads a tar stream pushed in chunks of any size.
 *
 * @example
 * ```ts
 * const r = new TarReader({ entry: (e) => …, data: (c) => …, endEntry: () => … })
 * for await (const chunk of tarStream) r.write(chunk)
 * r.finish() // throws ERR_STORE_BAD_TAR when the archive is truncated
 * ```
 */
export class TarReader {
  readonly #sink: TarSink
  readonly #limits: TarLimits
  #state: State = 'header'
  /** Partial header block carried over between chunks. */
  readonly #block = Buffer.alloc(BLOCK)
  #blockFill = 0
  /** Bytes of the current body (content or meta) still to come, then padding. */
  #remain = 0
  #pad = 0
  /** Offset in the tar of the next byte to read. */
  #offset = 0
  /** Where the current entry's first header (meta included) began. */
  #entryStart = -1
  #sawZeroBlock = false
  #pax: PaxRecords | undefined
  #longName: string | undefined
  #longLink: string | undefined
  #meta: { kind: 'pax' | 'global' | 'longname' | 'longlink'; buf: Buffer; fill: number; at: number } | undefined
  #inEntry = false
  #entries = 0

  constructor(sink: TarSink, limits: Partial<TarLimits> = {}) {
    this.#sink = sink
    this.#limits = { ...DEFAULT_LIMITS, ...limits }
  }

  /** Entries delivered so far. */
  get entries(): number {
    return this.#entries
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset
  }

  /** Consumes a chunk, delivering whatever entries and content it completes. */
  write(chunk: Buffer): void {
    let pos = 0
    const len = chunk.length
    while (pos < len) {
      switch (this.#state) {
        case 'header': {
          if (this.#blockFill === 0 && len - pos >= BLOCK) {
            this.#header(chunk, pos)
            pos += BLOCK
            this.#offset += BLOCK
          } else {
            const n = Math.min(BLOCK - this.#blockFill, len - pos)
            chunk.copy(this.#block, this.#blockFill, pos, pos + n)
            this.#blockFill += n
            pos += n
            this.#offset += n
            if (this.#blockFill === BLOCK) {
              this.#blockFill = 0
              this.#header(this.#block, 0, this.#offset - BLOCK)
            }
          }
          break
        }
        case 'body': {
          if (this.#remain > 0) {
            const n = Math.min(this.#remain, len - pos)
            this.#sink.data(n === len && pos === 0 ? chunk : chunk.subarray(pos, pos + n))
            this.#remain -= n
            pos += n
            this.#offset += n
          }
          if (this.#remain === 0) pos += this.#skipPad(len - pos)
          break
        }
        case 'meta': {
          const m = this.#meta!
          if (this.#remain > 0) {
            const n = Math.min(this.#remain, len - pos)
            chunk.copy(m.buf, m.fill, pos, pos + n)
            m.fill += n
            this.#remain -= n
            pos += n
            this.#offset += n
          }
          if (this.#remain === 0) pos += this.#skipPad(len - pos)
          break
        }
        case 'skip': {
          const n = Math.min(this.#remain + this.#pad, len - pos)
          const fromBody = Math.min(n, this.#remain)
          this.#remain -= fromBody
          this.#pad -= n - fromBody
          pos += n
          this.#offset += n
          if (this.#remain === 0 && this.#pad === 0) this.#state = 'header'
          break
        }
        case 'eof':
          // After the end-of-archive marker: the rest is padding (Go stops reading here; the
          // caller still hashes it into the diff id).
          this.#offset += len - pos
          pos = len
          break
      }
    }
  }

  /** Skips up to `avail` bytes of padding after a body; finishes the body once it is all gone. */
  #skipPad(avail: number): number {
    const n = Math.min(this.#pad, avail)
    this.#pad -= n
    this.#offset += n
    if (this.#pad === 0) this.#bodyDone()
    return n
  }

  #bodyDone(): void {
    if (this.#state === 'body') {
      this.#state = 'header'
      this.#inEntry = false
      this.#sink.endEntry()
    } else if (this.#state === 'meta') {
      this.#state = 'header'
      this.#metaDone()
    }
  }

  /** The input ended: anything but a clean end at a header boundary is a truncated archive. */
  finish(): void {
    if (this.#state === 'eof') return
    if (this.#state === 'header' && this.#blockFill === 0 && !this.#inEntry) {
      // Go accepts an archive that ends at a header boundary without the zero blocks, but not
      // with pax or GNU records waiting for their entry.
      if (this.#pax !== undefined || this.#longName !== undefined || this.#longLink !== undefined) {
        throw bad(`truncated archive: extended header at byte ${this.#entryStart} has no entry after it`)
      }
      return
    }
    if (this.#state === 'header') throw bad(`truncated archive: the input ends inside a header at byte ${this.#offset - this.#blockFill}`)
    throw bad(`truncated archive: the input ends ${this.#remain + this.#pad} bytes before the end of the entry at byte ${this.#entryStart}`)
  }

  #header(b: Buffer, off: number, at = this.#offset): void {
    if (isZeroBlock(b, off)) {
      if (this.#pax !== undefined || this.#longName !== undefined || this.#longLink !== undefined) {
        throw bad(`extended header at byte ${this.#entryStart} is followed by the end of the archive`)
      }
      if (this.#sawZeroBlock) this.#state = 'eof'
      this.#sawZeroBlock = true
      return
    }
    if (this.#sawZeroBlock) throw bad(`a lone zero block before byte ${at}: not the end of the archive, and not a header`)
    if (!checksumOk(b, off, at)) throw bad(`header at byte ${at}: invalid checksum`)
    if (this.#entryStart < 0) this.#entryStart = at
    const typeflag = b[off + 156]!
    const size = numeric(b, off + 124, 12, 'size', at)
    switch (typeflag) {
      case 0x78: // 'x' pax extended header for the next entry
      case 0x58: // 'X' Solaris' older name for it
        return this.#startMeta('pax', size, at)
      case 0x67: // 'g' pax global header: ignored, as Go's readers (containerd, Docker) do
        return this.#startMeta('global', size, at)
      case 0x4c: // 'L' GNU long name
        return this.#startMeta('longname', size, at)
      case 0x4b: // 'K' GNU long link name
        return this.#startMeta('longlink', size, at)
      case 0x56: // 'V' GNU volume label: no file
        this.#clearMeta()
        return this.#skip(size)
    }
    this.#entry(b, off, at, typeflag, size)
  }

  #startMeta(kind: 'pax' | 'global' | 'longname' | 'longlink', size: number, at: number): void {
    if (size > this.#limits.maxMetaSize) {
      throw bad(`${kind === 'longname' || kind === 'longlink' ? 'GNU long name' : 'pax'} header at byte ${at} is ${size} bytes, more than the ${this.#limits.maxMetaSize}-byte limit`)
    }
    this.#checkFits(size, at)
    this.#meta = { kind, buf: Buffer.allocUnsafe(size), fill: 0, at }
    this.#remain = size
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK
    this.#state = 'meta'
    if (size === 0) {
      this.#state = 'header'
      this.#metaDone()
    }
  }

  #metaDone(): void {
    const m = this.#meta!
    this.#meta = undefined
    switch (m.kind) {
      case 'pax':
        parsePax(m.buf, (this.#pax ??= {}), m.at)
        break
      case 'global':
        // Validated, then ignored: global records do not change entries (containerd, Docker).
        parsePax(m.buf, {}, m.at)
        if (this.#pax === undefined && this.#longName === undefined && this.#longLink === undefined) this.#entryStart = -1
        break
      case 'longname':
      case 'longlink': {
        const nul = m.buf.indexOf(0)
        const name = utf8(m.buf.subarray(0, nul < 0 ? m.buf.length : nul), 'GNU long name', m.at)
        if (m.kind === 'longname') this.#longName = name
        else this.#longLink = name
        break
      }
    }
  }

  #clearMeta(): void {
    this.#pax = undefined
    this.#longName = undefined
    this.#longLink = undefined
    this.#entryStart = -1
  }

  #skip(size: number): void {
    this.#remain = size
    this.#pad = (BLOCK - (size % BLOCK)) % BLOCK
    this.#state = size + this.#pad > 0 ? 'skip' : 'header'
  }

  #checkFits(size: number, at: number): void {
    const total = this.#limits.totalSize
    if (total !== undefined && at + BLOCK + size > total) {
      throw bad(`header at byte ${at} claims ${size} bytes of content, but the archive ends ${Math.max(0, total - at - BLOCK)} bytes later`)
    }
  }

  #entry(b: Buffer, off: number, at: number, typeflag: number, headerSize: number): void {
    const magic = b.toString('latin1', off + 257, off + 263)
    const ustar = magic === 'ustar\0'
    const gnu = magic === 'ustar '
    let name = text(b, off, 100, 'name', at)
    if (ustar) {
      // star puts times at the end of the prefix field and says so with "tar\0" at 508.
      const star = b.toString('latin1', off + 508, off + 512) === 'tar\0'
      const prefix = text(b, off + 345, star ? 131 : 155, 'prefix', at)
      if (prefix !== '') name = `${prefix}/${name}`
    }
    let kind: EntryKind
    let hasBody = false
    switch (typeflag) {
      case 0x30: // '0'
      case 0x00: // '\0' (v7)
      case 0x37: // '7' contiguous file
        // Old tars marked directories as files with a trailing slash.
        kind = name.endsWith('/') && typeflag !== 0x37 ? 'dir' : 'file'
        hasBody = kind === 'file'
        break
      case 0x31:
        kind = 'hardlink'
        break
      case 0x32:
        kind = 'symlink'
        break
      case 0x33:
        kind = 'char'
        break
      case 0x34:
        kind = 'block'
        break
      case 0x35:
        kind = 'dir'
        break
      case 0x36:
        kind = 'fifo'
        break
      case 0x44: // 'D' GNU dump directory: a directory whose body lists its contents
        kind = 'dir'
        break
      default: {
        const t = String.fromCharCode(typeflag)
        const what = t === 'S' ? 'a GNU sparse file' : t === 'M' ? 'a multi-volume continuation' : `entry type \`${/[ -~]/.test(t) ? t : `\\x${typeflag.toString(16)}`}\``
        throw new StoreError('ERR_STORE_UNSUPPORTED', `header at byte ${at} (\`${name.slice(0, 200)}\`): ${what} is not supported in a layer`, { path: name })
      }
    }
    const pax = this.#pax
    if (pax?.path !== undefined) name = pax.path
    if (this.#longName !== undefined) name = this.#longName
    let linkname = text(b, off + 157, 100, 'linkname', at)
    if (pax?.linkpath !== undefined) linkname = pax.linkpath
    if (this.#longLink !== undefined) linkname = this.#longLink
    if (name === '') throw bad(`header at byte ${at}: empty name`)
    if (name.includes('\0')) throw bad(`header at byte ${at}: name has a NUL byte`)
    if (Buffer.byteLength(name) > this.#limits.maxPathLength) {
      throw bad(`header at byte ${at}: name of ${Buffer.byteLength(name)} bytes, longer than ${this.#limits.maxPathLength}`, name.slice(0, 200))
    }
    if (kind === 'symlink' || kind === 'hardlink') {
      if (linkname === '') throw bad(`entry \`${name}\`: ${kind} without a target`, name)
      if (linkname.includes('\0')) throw bad(`entry \`${name}\`: link target has a NUL byte`, name)
      if (Buffer.byteLength(linkname) > this.#limits.maxPathLength) throw bad(`entry \`${name}\`: link target longer than ${this.#limits.maxPathLength} bytes`, name)
    } else {
      linkname = ''
    }
    const size = pax?.size ?? headerSize
    const uid = pax?.uid ?? numeric(b, off + 108, 8, 'uid', at)
    const gid = pax?.gid ?? numeric(b, off + 116, 8, 'gid', at)
    const entry: TarEntry = {
      name,
      kind,
      mode: numeric(b, off + 100, 8, 'mode', at) & 0o7777,
      uid,
      gid,
      size: hasBody ? size : 0,
      mtime: pax?.mtime ?? numeric(b, off + 136, 12, 'mtime', at, true),
      atime: pax?.atime,
      linkname,
      devmajor: pax?.devmajor ?? (ustar || gnu ? numeric(b, off + 329, 8, 'devmajor', at) : 0),
      devminor: pax?.devminor ?? (ustar || gnu ? numeric(b, off + 337, 8, 'devminor', at) : 0),
      xattrs: pax?.xattrs,
      offset: this.#entryStart,
    }
    if (uid > 0xfffffffe || gid > 0xfffffffe) throw bad(`entry \`${name}\`: owner ${uid}:${gid} out of range`, name)
    // Like Go: header-only kinds have no content whatever their size field says; a GNU dump
    // directory's listing is skipped.
    const bodySize = hasBody || typeflag === 0x44 ? size : 0
    this.#checkFits(bodySize, at)
    this.#clearMeta()
    this.#entries++
    this.#sink.entry(entry)
    if (hasBody && size > 0) {
      this.#inEntry = true
      this.#remain = size
      this.#pad = (BLOCK - (size % BLOCK)) % BLOCK
      this.#state = 'body'
      return
    }
    this.#sink.endEntry()
    if (bodySize > 0) this.#skip(bodySize)
  }
}
