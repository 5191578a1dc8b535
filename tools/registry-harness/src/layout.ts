/** A minimal OCI image layout writer and reader (blobs by digest, `index.json`, `oci-layout`). */
import { createHash } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { Annotation, MediaType, type Descriptor, type Digest, type Platform } from '@ctr/oci'

/** A descriptor as the harness writes it (a subset of the OCI descriptor, with the optionals). */
export interface Desc {
  /** The media type. */
  mediaType: string
  /** The content's digest. */
  digest: Digest
  /** The content's size in bytes. */
  size: number
  /** Where a foreign layer is fetched from. */
  urls?: string[]
  /** The platform of an index entry. */
  platform?: Platform
  /** Annotations. */
  annotations?: Record<string, string>
  /** The artifact type. */
  artifactType?: string
}

/** The path of a blob in an OCI layout. */
export function blobPath(layoutDir: string, digest: string): string {
  const [alg, hex] = digest.split(':')
  return path.join(layoutDir, 'blobs', alg ?? 'sha256', hex ?? '')
}

/**
 * Writes blobs and an `index.json` into an OCI image layout directory; the index is rewritten
 * by {@link LayoutWriter.save} with every reference added.
 * @internal
 */
export class LayoutWriter {
  readonly dir: string
  private readonly refs: Desc[] = []

  constructor(dir: string) {
    this.dir = dir
  }

  async init(): Promise<this> {
    await fs.mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true })
    await fs.writeFile(path.join(this.dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
    return this
  }

  /** Stores bytes as a blob (no-op if present) and returns its descriptor. */
  async putBytes(mediaType: string, data: Buffer | string): Promise<Desc> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    const digest: Digest = `sha256:${createHash('sha256').update(buf).digest('hex')}`
    const file = blobPath(this.dir, digest)
    if (!existsSync(file)) {
      const tmp = `${file}.tmp-${process.pid}`
      await fs.writeFile(tmp, buf)
      await fs.rename(tmp, file)
    }
    return { mediaType, digest, size: buf.length }
  }

  /** Stores a JSON document (serialised compactly, keys in the order given). */
  async putJson(mediaType: string, doc: unknown): Promise<Desc> {
    return this.putBytes(mediaType, JSON.stringify(doc))
  }

  /** Moves a file already written (e.g. by `writeLayer`) into place as a blob. */
  async adoptFile(file: string, mediaType: string, digest: Digest, size: number): Promise<Desc> {
    const dest = blobPath(this.dir, digest)
    if (existsSync(dest)) await fs.rm(file, { force: true })
    else await fs.rename(file, dest)
    return { mediaType, digest, size }
  }

  /** A temporary file name inside the layout, for a blob being written. */
  tempFile(name: string): string {
    return path.join(this.dir, 'blobs', `.tmp-${process.pid}-${name}`)
  }

  /** Adds a reference (`org.opencontainers.image.ref.name`) to the index. */
  addRef(desc: Desc, refName: string, annotations: Record<string, string> = {}): void {
    const entry: Desc = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size }
    if (desc.platform !== undefined) entry.platform = desc.platform
    entry.annotations = { ...annotations, [Annotation.RefName]: refName }
    this.refs.push(entry)
  }

  /** Writes `index.json`. */
  async save(annotations?: Record<string, string>): Promise<void> {
    const index: Record<string, unknown> = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: this.refs }
    if (annotations !== undefined) index.annotations = annotations
    await fs.writeFile(path.join(this.dir, 'index.json'), JSON.stringify(index, null, 2))
  }
}

/** The `index.json` of a layout, as read by {@link readLayoutIndex}. */
export interface LayoutIndex {
  /** The index entries. */
  manifests: Array<Descriptor & { annotations?: Record<string, string> }>
  /** The index's annotations. */
  annotations?: Record<string, string>
}

/**
 * Reads a layout's `index.json`.
 *
 * @example
 * ```ts
 * const index = await readLayoutIndex('/tmp/oci')
 * ```
 */
export async function readLayoutIndex(layoutDir: string): Promise<LayoutIndex> {
  return JSON.parse(await fs.readFile(path.join(layoutDir, 'index.json'), 'utf8')) as LayoutIndex
}
