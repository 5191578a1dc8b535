/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) as a
 * {@link ContentSink}. Blobs are written to a temporary file in the same directory (flushed to
 * disk as they grow), verified, and renamed into place; a crash leaves only temporaries, removed
 * on the next open.
 */
import { createReadStream, promises as fs } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { Annotation, BlobVerifier, parseLayoutIndex, splitDigest, type Descriptor, type ImageIndex } from '@ctr/oci'
import { isVerifiedFor, type ContentSink, type ContentSource } from './sink.js'

const TMP_PREFIX = '.tmp-'

/**
 * Size of each of a blob's two write buffers. Chunks are copied into one while the other is being
 * written: one write (and one thread-pool round trip) per 256 KiB instead of one per network
 * chunk, and a blob's write memory is these two buffers, whatever the chunking. (Measured here:
 * with one write per 64 KiB chunk a 100 MiB pull took ~20% longer; 1 MiB buffers were no
 * faster than 256 KiB ones, and raised peak RSS by ~7 MiB with three blobs in flight.)
 */
const WRITE_BUFFER = 256 << 10

/**
 * With fsync on, a blob is flushed every this many bytes while it is still arriving, so the
 * flush before the rename waits for the tail only. (Left to itself the kernel starts writeback
 * only past a share of RAM: a 1 GiB blob was then flushed all at the end, ~2.5 s here; flushing
 * every 8 MiB made fsync on cost about nothing over fsync off.)
 */
const FLUSH_EVERY = 8 << 20

/** Writes `length` bytes of `buffer` at `position`, again from where a short write stopped. */
async function writeAll(fh: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await fh.write(buffer, done, length - done, position + done)
    if (bytesWritten <= 0) throw Object.assign(new Error('a write made no progress'), { code: 'EIO' })
    done += bytesWritten
  }
}

/**
 * Streams `data` (`size` bytes expected) into an open file through two alternating buffers: one
 * fills while the other is written, with one write in flight at a time (so a slow disk slows the
 * download instead of filling memory). `verifier`, when given, sees every chunk. With `durable`, the file is flushed
 * as it grows (one fdatasync in flight at a time) and once more at the end.
 */
async function streamToFile(fh: FileHandle, data: AsyncIterable<Uint8Array>, size: number, verifier: BlobVerifier | undefined, durable: boolean, signal?: AbortSignal): Promise<void> {
  const bufferSize = Math.max(1, Math.min(WRITE_BUFFER, size)) // a small blob needs no MiB
  let buffer: Buffer = Buffer.allocUnsafeSlow(bufferSize)
  let spare: Buffer | undefined
  let filled = 0
  let position = 0
  let writing: Promise<void> = Promise.resolve()
  let flushing: Promise<void> | undefined
  let flushedAt = 0
  // A failed write or flush is seen at the next await of it; until then it must not count as unhandled.
  const settle = (p: Promise<void>) => (p.catch(() => undefined), p)
  try {
    for await (const chunk of data) {
      signal?.throwIfAborted()
      verifier?.update(chunk)
      for (let offset = 0; offset < chunk.byteLength; ) {
        const n = Math.min(chunk.byteLength - offset, bufferSize - filled)
        buffer.set(chunk.subarray(offset, offset + n), filled)
        offset += n
        filled += n
        if (filled < bufferSize) continue
        await writing // the spare buffer is free again once its write is done
        writing = settle(writeAll(fh, buffer, filled, position))
        ;[buffer, spare] = [spare ?? Buffer.allocUnsafeSlow(bufferSize), buffer]
        position += filled
        filled = 0
        if (durable && !flushing && position - flushedAt >= FLUSH_EVERY) {
          const upTo = position
          flushing = settle(writing.then(() => fh.datasync()).then(() => ((flushedAt = upTo), (flushing = undefined))))
        }
      }
    }
    await writing
    if (filled > 0) await writeAll(fh, buffer, filled, position)
    await flushing
    if (durable) await fh.datasync()
  } finally {
    // Never leave a write or flush running on a file the caller is about to close.
    await Promise.allSettled([writing, flushing])
  }
}

async function writeFileAtomic(file: string, data: string | Buffer, durable: boolean): Promise<void> {
  const tmp = path.join(path.dirname(file), `${TMP_PREFIX}${path.basename(file)}-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const fh = await fs.open(tmp, 'w', 0o644)
  try {
    await fh.writeFile(data)
    if (durable) await fh.sync()
  } finally {
    await fh.close()
  }
  await fs.rename(tmp, file)
}

export class OciLayout implements ContentSink, ContentSource {
  /** Serialises index.json updates within this process. */
  private indexLock: Promise<void> = Promise.resolve()

  private constructor(
    readonly dir: string,
    private readonly durable: boolean,
  ) {}

  /**
   * Opens (creating if needed) a layout directory and removes temporaries a crash left.
   * `fsync: false` skips flushing each blob (and `index.json`) to disk before it is renamed into
   * place — faster (skopeo does not flush either), but a power loss may then leave a truncated
   * blob.
   *
   * @example
   * ```ts
   * const layout = await OciLayout.open('/tmp/busybox-oci')
   * await client.pull('127.0.0.1:5000/library/busybox:latest', { into: layout })
   * ```
   */
  static async open(dir: string, options: { fsync?: boolean } = {}): Promise<OciLayout> {
    const root = path.resolve(dir)
    const durable = options.fsync ?? true
    await fs.mkdir(path.join(root, 'blobs', 'sha256'), { recursive: true })
    const layoutFile = path.join(root, 'oci-layout')
    try {
      await fs.access(layoutFile)
    } catch {
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }), durable)
    }
    const indexFile = path.join(root, 'index.json')
    try {
      await fs.access(indexFile)
    } catch {
      await writeFileAtomic(indexFile, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }), durable)
    }
    for (const alg of await fs.readdir(path.join(root, 'blobs'))) {
      for (const f of await fs.readdir(path.join(root, 'blobs', alg))) {
        if (f.startsWith(TMP_PREFIX)) await fs.rm(path.join(root, 'blobs', alg, f), { force: true })
      }
    }
    return new OciLayout(root, durable)
  }

  /** Path of a blob in the layout. */
  blobPath(digest: string): string {
    const { algorithm, hex } = splitDigest(digest as Descriptor['digest'])
    return path.join(this.dir, 'blobs', algorithm, hex)
  }

  async has(desc: Descriptor): Promise<boolean> {
    try {
      const st = await fs.stat(this.blobPath(desc.digest))
      return st.size === desc.size
    } catch {
      return false
    }
  }

  async write(desc: Descriptor, data: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    const final = this.blobPath(desc.digest)
    await fs.mkdir(path.dirname(final), { recursive: true })
    const tmp = path.join(path.dirname(final), `${TMP_PREFIX}${path.basename(final)}-${process.pid}-${Math.random().toString(36).slice(2)}`)
    // One hash per byte: a stream that verifies itself for this digest and size (the client's
    // blob streams) errors before it ends if the content is wrong; any other is verified here.
    const verifier = isVerifiedFor(data, desc) ? undefined : new BlobVerifier({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` })
    try {
      const fh = await fs.open(tmp, 'wx', 0o644)
      try {
        await streamToFile(fh, data, desc.size, verifier, this.durable, signal)
      } finally {
        await fh.close()
      }
      verifier?.verify()
      await fs.rename(tmp, final)
    } catch (err) {
      await fs.rm(tmp, { force: true })
      throw err
    }
  }

  async tag(ref: string, desc: Descriptor): Promise<void> {
    const run = this.indexLock.then(async () => {
      const file = path.join(this.dir, 'index.json')
      const index = parseLayoutIndex(await fs.readFile(file)) as ImageIndex
      const entry: Descriptor = { ...desc, annotations: { ...desc.annotations, [Annotation.RefName]: ref } }
      const manifests = index.manifests.filter((m) => m.annotations?.[Annotation.RefName] !== ref)
      manifests.push(entry)
      await writeFileAtomic(file, JSON.stringify({ ...index, manifests }, null, 2), this.durable)
    })
    this.indexLock = run.catch(() => undefined)
    await run
  }

  /** A blob's bytes, streamed from the layout. */
  read(desc: Descriptor): AsyncIterable<Uint8Array> {
    return createReadStream(this.blobPath(desc.digest), { highWaterMark: 1 << 20 })
  }

  /** The descriptor index.json holds for a ref name, if any. */
  async resolve(ref: string): Promise<Descriptor | undefined> {
    const index = parseLayoutIndex(await fs.readFile(path.join(this.dir, 'index.json'))) as ImageIndex
    return index.manifests.find((m) => m.annotations?.[Annotation.RefName] === ref)
  }
}
