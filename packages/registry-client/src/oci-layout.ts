/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) as a
 * {@link ContentSink}. Blobs are written to a temporary file in the same directory, fsynced,
 * verified, and renamed into place; a crash leaves only temporaries, removed on the next open.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Annotation, BlobVerifier, parseLayoutIndex, splitDigest, type Descriptor, type ImageIndex } from '@ctr/oci'
import type { ContentSink, ContentSource } from './sink.js'

const TMP_PREFIX = '.tmp-'

async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `${TMP_PREFIX}${path.basename(file)}-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const fh = await fs.open(tmp, 'w', 0o644)
  try {
    await fh.writeFile(data)
    await fh.sync()
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
   * `fsync: false` skips flushing each blob to disk before it is renamed into place — faster
   * (skopeo does not flush either), but a power loss may then leave a truncated blob.
   *
   * @example
   * ```ts
   * const layout = await OciLayout.open('/tmp/busybox-oci')
   * await client.pull('127.0.0.1:5000/library/busybox:latest', { into: layout })
   * ```
   */
  static async open(dir: string, options: { fsync?: boolean } = {}): Promise<OciLayout> {
    const root = path.resolve(dir)
    await fs.mkdir(path.join(root, 'blobs', 'sha256'), { recursive: true })
    const layoutFile = path.join(root, 'oci-layout')
    try {
      await fs.access(layoutFile)
    } catch {
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }))
    }
    const indexFile = path.join(root, 'index.json')
    try {
      await fs.access(indexFile)
    } catch {
      await writeFileAtomic(indexFile, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }))
    }
    for (const alg of await fs.readdir(path.join(root, 'blobs'))) {
      for (const f of await fs.readdir(path.join(root, 'blobs', alg))) {
        if (f.startsWith(TMP_PREFIX)) await fs.rm(path.join(root, 'blobs', alg, f), { force: true })
      }
    }
    return new OciLayout(root, options.fsync ?? true)
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
    // Verified here too: a sink must not trust its caller with what enters it.
    const verifier = new BlobVerifier({ digest: desc.digest, size: desc.size, what: `blob ${desc.digest}` })
    try {
      const out = createWriteStream(tmp, { mode: 0o644 })
      await pipeline(
        data,
        async function* (source: AsyncIterable<Uint8Array>) {
          for await (const chunk of source) {
            verifier.update(chunk)
            yield chunk
          }
        },
        out,
        ...(signal ? [{ signal }] : []),
      )
      verifier.verify()
      if (this.durable) {
        const fh = await fs.open(tmp, 'r')
        try {
          await fh.sync()
        } finally {
          await fh.close()
        }
      }
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
      await writeFileAtomic(file, JSON.stringify({ ...index, manifests }, null, 2))
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
