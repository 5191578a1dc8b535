/**
 * Deterministic tar layers without Docker: headers encoded by node-tar's `Header` (and `Pax`
 * for long names), fixed owner and mtime, entries in the order given; compressed with
 * `node:zlib` (gzip) or the `zstd` CLI; digests of the blob and of the uncompressed tar
 * (the `diff_id`) computed while writing.
 */
import { spawn } from 'node:child_process'
import { createHash, type Hash } from 'node:crypto'
import { createWriteStream, promises as fs } from 'node:fs'
import { Duplex, Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { Header, Pax } from 'tar'
import type { Digest } from '@ctr/oci'
import { ensureTools, HarnessError, Tools } from './system.js'

/** The mtime of every entry: 2024-01-01T00:00:00Z. */
export const FIXED_MTIME = new Date('2024-01-01T00:00:00Z')

/** One entry of a layer. Paths are relative (`bin/sh`), directories may end with `/`. */
export type TarEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Buffer | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'hardlink'; path: string; target: string }

/** The compression of a layer blob. */
export type Compression = 'gzip' | 'zstd' | 'none'

/** What {@link writeLayer} wrote. */
export interface LayerInfo {
  /** The blob's digest (of the compressed bytes). */
  digest: Digest
  /** The blob's size in bytes. */
  size: number
  /** The digest of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  diffId: Digest
  /** The size of the uncompressed tar. */
  tarSize: number
}

const BLOCK = 512

function headerFor(data: { path: string; type: 'Directory' | 'File' | 'SymbolicLink' | 'Link'; mode: number; size: number; linkpath?: string }): Buffer {
  const fields = {
    path: data.path,
    type: data.type,
    mode: data.mode,
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
    size: data.size,
    mtime: FIXED_MTIME,
    ...(data.linkpath !== undefined ? { linkpath: data.linkpath } : {}),
  }
  const header = new Header(fields)
  const block = Buffer.alloc(BLOCK)
  const needPax = header.encode(block, 0)
  if (!needPax) return block
  // Long names: a PAX extended header first (node-tar's Pax), then the truncated ustar header.
  const pax = new Pax({ path: data.path, ...(data.linkpath !== undefined ? { linkpath: data.linkpath } : {}), mtime: FIXED_MTIME })
  return Buffer.concat([pax.encode(), block])
}

function padding(size: number): Buffer {
  const rest = size % BLOCK
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest)
}

/**
 * The tar header (and padding rules) for one regular file of `size` bytes whose content is
 * streamed separately.
 * @internal
 */
export function fileHeader(path: string, size: number, mode = 0o644): Buffer {
  return headerFor({ path, type: 'File', mode, size })
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END = Buffer.alloc(BLOCK * 2)

/**
 * Encodes entries as an uncompressed tar archive, deterministically.
 *
 * @example
 * ```ts
 * const tar = tarBuffer([{ type: 'dir', path: 'etc/' }, { type: 'file', path: 'etc/motd', data: 'hi\n' }])
 * ```
 */
export function tarBuffer(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = []
  for (const e of entries) {
    switch (e.type) {
      case 'dir': {
        const p = e.path.endsWith('/') ? e.path : `${e.path}/`
        parts.push(headerFor({ path: p, type: 'Directory', mode: e.mode ?? 0o755, size: 0 }))
        break
      }
      case 'file': {
        const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data
        parts.push(headerFor({ path: e.path, type: 'File', mode: e.mode ?? 0o644, size: data.length }), data, padding(data.length))
        break
      }
      case 'symlink':
        parts.push(headerFor({ path: e.path, type: 'SymbolicLink', mode: 0o777, size: 0, linkpath: e.target }))
        break
      case 'hardlink':
        parts.push(headerFor({ path: e.path, type: 'Link', mode: 0o644, size: 0, linkpath: e.target }))
        break
    }
  }
  parts.push(TAR_END)
  return Buffer.concat(parts)
}

/** Counts and hashes what flows through. */
class Measure extends Transform {
  readonly hash: Hash = createHash('sha256')
  size = 0
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk)
    this.size += chunk.length
    cb(null, chunk)
  }
  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}`
  }
}

function zstdStream(level: number): { stream: Duplex; done: Promise<void> } {
  const child = spawn(Tools.zstd, [`-${level}`, '-q', '-c', '--no-progress', '-T1'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const errs: Buffer[] = []
  child.stderr.on('data', (c: Buffer) => errs.push(c))
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new HarnessError(`zstd exited ${code}: ${Buffer.concat(errs).toString().trim()}`)),
    )
  })
  return { stream: Duplex.from({ writable: child.stdin, readable: child.stdout }), done }
}

/**
 * Writes a layer blob to `file`: the tar from `source` (bytes or a stream of tar bytes),
 * compressed as asked, with digests computed on the way. Streams: memory stays flat for any
 * size.
 *
 * @example
 * ```ts
 * const info = await writeLayer(tarBuffer(entries), 'gzip', '/tmp/layer.tgz')
 * ```
 */
export async function writeLayer(source: Buffer | Readable, compression: Compression, file: string, level?: number): Promise<LayerInfo> {
  const input = Buffer.isBuffer(source) ? Readable.from([source]) : source
  const tarMeasure = new Measure()
  const blobMeasure = new Measure()
  const out = createWriteStream(file)
  if (compression === 'none') {
    const m = new Measure()
    await pipeline(input, m, out)
    const d = m.digest()
    return { digest: d, size: m.size, diffId: d, tarSize: m.size }
  }
  if (compression === 'gzip') {
    await pipeline(input, tarMeasure, createGzip({ level: level ?? 6 }), blobMeasure, out)
  } else {
    await ensureTools(['zstd'])
    const z = zstdStream(level ?? 3)
    await Promise.all([pipeline(input, tarMeasure, z.stream, blobMeasure, out), z.done])
  }
  return { digest: blobMeasure.digest(), size: blobMeasure.size, diffId: tarMeasure.digest(), tarSize: tarMeasure.size }
}

/**
 * Size of the file at `file`.
 * @internal
 */
export async function fileSize(file: string): Promise<number> {
  return (await fs.stat(file)).size
}
