/**
 * Tar archives byte by byte, for the layer tests: every entry kind, owners, modes, times,
 * pax records (binary xattrs included), GNU long names and base-256 numbers — and the broken
 * and hostile headers no tar tool would write (bad checksums, lying sizes, `..` names).
 */
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const BLOCK = 512

/** One archive member as raw as the tests need it. */
export interface RawEntry {
  name: string
  /** Typeflag character: '0' file (default), '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, or anything. */
  type?: string
  mode?: number
  uid?: number
  gid?: number
  /** Seconds since the epoch (integer) for the ustar field. */
  mtime?: number
  linkname?: string
  data?: Buffer | string
  /** Size field to write instead of the data's length (lying headers). */
  size?: number
  /** Size as GNU base-256 (for sizes that do not fit in 11 octal digits). */
  base256Size?: number
  /** uid as base-256. */
  base256Uid?: number
  devmajor?: number
  devminor?: number
  /** Pax records written in an 'x' header just before the entry. */
  pax?: Array<[string, string | Buffer]>
  /** A GNU 'L' record before the entry (and a truncated ustar name). */
  gnuLongName?: string
  /** A GNU 'K' record before the entry. */
  gnuLongLink?: string
  /** Header format: POSIX ustar (default) or GNU. */
  format?: 'ustar' | 'gnu'
  /** Write a wrong checksum. */
  badChecksum?: boolean
  /** Raw bytes to put in the size field (garbage). */
  rawSize?: string
  /** The ustar prefix field. */
  prefix?: string
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, '0')
  if (s.length > len - 1) throw new Error(`octal ${value} does not fit in ${len} bytes`)
  buf.write(`${s}\0`, off, len, 'latin1')
}

function base256(buf: Buffer, off: number, len: number, value: number): void {
  buf.fill(0, off, off + len)
  let v = value
  for (let i = off + len - 1; i > off; i--) {
    buf[i] = v % 256
    v = Math.floor(v / 256)
  }
  buf[off] = 0x80
}

function str(buf: Buffer, off: number, len: number, value: string): void {
  const b = Buffer.from(value, 'utf8')
  if (b.length > len) throw new Error(`\`${value}\` does not fit in ${len} bytes`)
  b.copy(buf, off)
}

/** One 512-byte header block. */
export function headerBlock(e: RawEntry & { size: number; type: string }): Buffer {
  const b = Buffer.alloc(BLOCK)
  str(b, 0, 100, Buffer.byteLength(e.name) > 100 ? e.name.slice(0, 100) : e.name)
  octal(b, 100, 8, e.mode ?? (e.type === '5' ? 0o755 : 0o644))
  if (e.base256Uid !== undefined) base256(b, 108, 8, e.base256Uid)
  else octal(b, 108, 8, e.uid ?? 0)
  octal(b, 116, 8, e.gid ?? 0)
  if (e.rawSize !== undefined) b.write(e.rawSize.padEnd(12, '\0').slice(0, 12), 124, 12, 'latin1')
  else if (e.base256Size !== undefined) base256(b, 124, 12, e.base256Size)
  else octal(b, 124, 12, e.size)
  octal(b, 136, 12, e.mtime ?? 1_700_000_000)
  b.write(e.type, 156, 1, 'latin1')
  if (e.linkname !== undefined) str(b, 157, 100, Buffer.byteLength(e.linkname) > 100 ? e.linkname.slice(0, 100) : e.linkname)
  if (e.format === 'gnu') b.write('ustar  \0', 257, 8, 'latin1')
  else b.write('ustar\x0000', 257, 8, 'latin1')
  str(b, 265, 32, 'root')
  str(b, 297, 32, 'root')
  octal(b, 329, 8, e.devmajor ?? 0)
  octal(b, 337, 8, e.devminor ?? 0)
  if (e.prefix !== undefined) str(b, 345, 155, e.prefix)
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const c of b) sum += c
  if (e.badChecksum) sum += 1
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1')
  return b
}

function pad(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK)
}

/** A pax record body `"<len> key=value\n"` for each record (values may be binary). */
export function paxBody(records: Array<[string, string | Buffer]>): Buffer {
  const out: Buffer[] = []
  for (const [k, v] of records) {
    const value = typeof v === 'string' ? Buffer.from(v) : v
    const rest = Buffer.concat([Buffer.from(` ${k}=`), value, Buffer.from('\n')])
    let len = rest.length + 1
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length
    out.push(Buffer.from(String(len)), rest)
  }
  return Buffer.concat(out)
}

function meta(type: string, name: string, body: Buffer, format: 'ustar' | 'gnu' = 'ustar'): Buffer {
  return Buffer.concat([headerBlock({ name, type, size: body.length, format }), body, pad(body.length)])
}

/** The bytes of one entry (its pax or GNU records first). */
export function entryBytes(e: RawEntry): Buffer {
  const type = e.type ?? '0'
  const data = e.data === undefined ? Buffer.alloc(0) : typeof e.data === 'string' ? Buffer.from(e.data) : e.data
  const parts: Buffer[] = []
  if (e.pax !== undefined) parts.push(meta('x', 'PaxHeader', paxBody(e.pax)))
  if (e.gnuLongName !== undefined) parts.push(meta('L', '././@LongLink', Buffer.from(`${e.gnuLongName}\0`), 'gnu'))
  if (e.gnuLongLink !== undefined) parts.push(meta('K', '././@LongLink', Buffer.from(`${e.gnuLongLink}\0`), 'gnu'))
  parts.push(headerBlock({ ...e, type, size: e.size ?? data.length }))
  parts.push(data, pad(data.length))
  return Buffer.concat(parts)
}

/** A whole archive; `end: false` leaves out the two zero blocks. */
export function rawTar(entries: readonly RawEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts = entries.map(entryBytes)
  if (opts.end !== false) parts.push(Buffer.alloc(2 * BLOCK))
  return Buffer.concat(parts)
}

/** `sha256:<hex>` of some bytes. */
export function sha256(b: Buffer | string): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`
}

/** A layer blob of a tar written to `file`: its descriptor and diff id. */
export interface BuiltBlob {
  blobPath: string
  mediaType: string
  digest: string
  size: number
  diffId: string
}

/** Media types by compression. */
export const LAYER_MEDIA_TYPES = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
} as const

/** Compresses a tar (gzip with zlib, zstd with the CLI) and writes it as a blob. */
export function writeBlob(file: string, tar: Buffer, compression: 'gzip' | 'zstd' | 'none' = 'gzip', mediaType?: string): BuiltBlob {
  const blob = compression === 'gzip' ? gzipSync(tar, { level: 1 }) : compression === 'zstd' ? execFileSync('zstd', ['-q', '-c', '-1'], { input: tar, maxBuffer: 1 << 30 }) : tar
  writeFileSync(file, blob)
  return { blobPath: file, mediaType: mediaType ?? LAYER_MEDIA_TYPES[compression], digest: sha256(blob), size: blob.length, diffId: sha256(tar) }
}
