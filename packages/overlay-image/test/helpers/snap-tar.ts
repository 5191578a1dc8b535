/**
 * A small, strict tar reader for the commit suite: it lists every entry of an archive with
 * the header fields and pax records (xattrs included) exactly as written, so the tests see
 * what a consumer would, independently of the code under test.
 */
import { spawnSync } from 'node:child_process'
import { gunzipSync } from 'node:zlib'

export interface ListedEntry {
  name: string
  type: string // '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  linkname: string
  uname: string
  gname: string
  devmajor: number
  devminor: number
  xattrs: Record<string, string>
  content: Buffer
  /** Whether a pax header preceded it, and which keys it had. */
  paxKeys: string[]
}

function str(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len)
  const z = s.indexOf(0)
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8')
}

function num(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    let v = 0
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i]!
    return v
  }
  const s = str(b, off, len).trim()
  return s === '' ? 0 : parseInt(s, 8)
}

/** Parses a whole uncompressed tar; throws on bad checksums or a missing end. */
export function listTar(tar: Buffer): ListedEntry[] {
  const out: ListedEntry[] = []
  let off = 0
  let pax: Map<string, Buffer> | undefined
  for (;;) {
    if (off + 512 > tar.length) throw new Error('tar: truncated (no end-of-archive blocks)')
    const h = tar.subarray(off, off + 512)
    if (h.every((x) => x === 0)) {
      if (!tar.subarray(off + 512, off + 1024).every((x) => x === 0)) throw new Error('tar: one zero block only')
      if (off + 1024 !== tar.length) throw new Error(`tar: ${tar.length - off - 1024} bytes after the end`)
      return out
    }
    let sum = 0
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!
    if (sum !== num(h, 148, 8)) throw new Error(`tar: bad checksum at ${off}`)
    if (h.subarray(257, 263).toString('latin1') !== 'ustar\0') throw new Error('tar: not ustar')
    const type = String.fromCharCode(h[156]!)
    const size = num(h, 124, 12)
    const body = tar.subarray(off + 512, off + 512 + size)
    off += 512 + Math.ceil(size / 512) * 512
    if (type === 'x') {
      pax = new Map()
      let p = 0
      while (p < body.length) {
        const sp = body.indexOf(0x20, p)
        const len = parseInt(body.subarray(p, sp).toString('latin1'), 10)
        const rec = body.subarray(sp + 1, p + len - 1) // without the newline
        if (body[p + len - 1] !== 0x0a) throw new Error('tar: pax record without newline')
        const eq = rec.indexOf(0x3d)
        pax.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)))
        p += len
      }
      continue
    }
    const prefix = str(h, 345, 155)
    let name = str(h, 0, 100)
    if (prefix) name = `${prefix}/${name}`
    const e: ListedEntry = {
      name,
      type,
      mode: num(h, 100, 8),
      uid: num(h, 108, 8),
      gid: num(h, 116, 8),
      size,
      mtime: num(h, 136, 12),
      linkname: str(h, 157, 100),
      uname: str(h, 265, 32),
      gname: str(h, 297, 32),
      devmajor: num(h, 329, 8),
      devminor: num(h, 337, 8),
      xattrs: {},
      content: Buffer.from(body),
      paxKeys: pax ? [...pax.keys()] : [],
    }
    if (pax) {
      for (const [k, v] of pax) {
        if (k === 'path') e.name = v.toString('utf8')
        else if (k === 'linkpath') e.linkname = v.toString('utf8')
        else if (k === 'uid') e.uid = Number(v.toString())
        else if (k === 'gid') e.gid = Number(v.toString())
        else if (k === 'size') e.size = Number(v.toString())
        else if (k === 'mtime') e.mtime = Number(v.toString())
        else if (k.startsWith('SCHILY.xattr.')) e.xattrs[k.slice('SCHILY.xattr.'.length)] = v.toString('latin1')
      }
      pax = undefined
    }
    out.push(e)
  }
}

/** Decompresses a layer blob: gzip in-process, zstd with the zstd program. */
export function decompressBlob(blob: Buffer, kind: 'gzip' | 'zstd' | 'none'): Buffer {
  if (kind === 'none') return blob
  if (kind === 'gzip') return gunzipSync(blob)
  const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: blob, maxBuffer: 1 << 30 })
  if (r.status !== 0) throw new Error(`zstd -d: ${r.stderr.toString()}`)
  return r.stdout
}
