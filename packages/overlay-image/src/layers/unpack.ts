/**
 * Unpacking layer blobs into `layers/<chain id>/fs`, once per chain id.
 *
 * One pass over the blob: read → digest and size of the blob as it is read → decompress →
 * digest of the tar (the diff id) → {@link TarReader} → {@link SafeWriter} into
 * `layers/.tmp-<owner>-<random>/fs`. Only when both digests match and every entry is written
 * does `layer.json` go in and the directory get renamed to `layers/<hex>` — atomically, so a
 * layer directory with a `layer.json` is always complete. Any failure or abort removes the
 * temporary directory; a crash leaves it for {@link cleanLayerTemporaries}.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream, promises as fs, readFileSync } from 'node:fs'
import path from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { BlobVerifier, DigestMismatchError, SizeMismatchError, isDigest, type Descriptor } from '@ctr/oci'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import type { StorePaths } from '../paths.js'
import { chainId as chainIdOf, chainIds as chainIdsOf } from './chain-id.js'
import { compressionOf, decompress, sniffCompression, type Compression } from './compression.js'
import { readLayerRecord, writeLayerRecord, type LayerRecord } from './record.js'
import { SafeWriter } from './safe-writer.js'
import { TarReader } from './tar-reader.js'

/** Progress of an unpack: compressed bytes of `layer` (its digest) read so far, of `total`. */
export interface UnpackProgress {
  layer: string
  bytes: number
  total: number
}

/** Options of {@link unpackLayer} and {@link unpackImageLayers}. */
export interface UnpackOptions {
  /** Aborting stops the unpack with `ERR_STORE_ABORTED` and removes what it wrote. */
  signal?: AbortSignal
  /** Called as the blob is read (about every 1 MiB). */
  onProgress?: (p: UnpackProgress) => void
  /**
   * Flush the layer to disk before it is renamed into place (default `true`): one `syncfs`
   * of the store's file system, then `layer.json` and the directories fsynced. Without it a
   * power cut can leave a layer that has its `layer.json` but not all its content.
   */
  fsync?: boolean
}

/** Options of {@link unpackImageLayers}. */
export interface UnpackImageOptions extends UnpackOptions {
  /** Layers unpacked at the same time (default 2: decompression of one overlaps writing another). */
  concurrency?: number
}

/** A layer blob to unpack. */
export interface LayerBlob {
  /** Where the blob is (normally `blobs/sha256/<hex>` of the store). */
  blobPath: string
  /** Its media type: decides the expected compression (the blob's magic bytes win). */
  mediaType: string
  /** Its digest, checked as it is read. */
  digest: string
  /** Its size, checked as it is read. */
  size: number
}

const TMP_PREFIX = '.tmp-'
const READ_CHUNK = 1 << 20

/** Unpacks in flight in this process, by layer directory: a second caller waits for the first. */
const inFlight = new Map<string, Promise<unknown>>()

/**
 * Unpacks one layer blob into `layers/<chain id hex>/` (`fs/` and `layer.json`), unless it is
 * already there: then it returns `created: false` without reading the blob.
 *
 * Checks: the blob's size and digest as it is read (`ERR_STORE_SIZE_MISMATCH`,
 * `ERR_STORE_DIGEST_MISMATCH`), the uncompressed tar's digest against `diffId`
 * (`ERR_STORE_DIFF_ID_MISMATCH`), every entry (`ERR_STORE_UNSAFE_TAR` for one that would
 * write outside the layer, `ERR_STORE_BAD_TAR` for a malformed archive,
 * `ERR_STORE_UNSUPPORTED` for entry kinds a layer cannot hold). On any error or abort
 * (`ERR_STORE_ABORTED`) nothing of the layer is left.
 *
 * @example
 * ```ts
 * const { chainId, created } = await unpackLayer(paths, { blobPath, mediaType, digest, size }, diffId, undefined)
 * // paths.layerFs(chainId) holds the layer's files
 * ```
 */
export async function unpackLayer(
  paths: StorePaths,
  layer: LayerBlob,
  diffId: string,
  parentChainId: string | undefined,
  opts: UnpackOptions = {},
): Promise<{ chainId: string; created: boolean }> {
  if (!isDigest(layer.digest)) throw new StoreError('ERR_STORE_BAD_IMAGE', `layer digest \`${layer.digest}\` is not a digest`, { field: 'digest' })
  if (!Number.isSafeInteger(layer.size) || layer.size < 0) {
    throw new StoreError('ERR_STORE_BAD_IMAGE', `layer ${layer.digest}: size ${String(layer.size)} is not a byte count`, { field: 'size', digest: layer.digest })
  }
  const chainId = chainIdOf(parentChainId, diffId)
  const dir = paths.layer(chainId)
  for (;;) {
    if (await exists(paths.layerMeta(chainId))) return { chainId, created: false }
    const running = inFlight.get(dir)
    if (running === undefined) break
    // Another unpack of this chain id in this process: wait for it, then look again (if it
    // failed, this one tries for itself).
    await running.catch(() => {})
  }
  throwIfAborted(opts.signal, `unpack layer ${layer.digest}`)
  const work = unpackNew(paths, layer, diffId, parentChainId, chainId, opts)
  inFlight.set(dir, work)
  try {
    return { chainId, created: await work }
  } finally {
    inFlight.delete(dir)
  }
}

async function unpackNew(
  paths: StorePaths,
  layer: LayerBlob,
  diffId: string,
  parent: string | undefined,
  chainId: string,
  opts: UnpackOptions,
): Promise<boolean> {
  const compression = compressionOf(layer.mediaType)
  await fs.mkdir(paths.layers, { recursive: true }).catch((err) => {
    throw ioError('create', paths.layers, err)
  })
  const tmp = path.join(paths.layers, `${TMP_PREFIX}${ownerTag()}-${randomBytes(6).toString('hex')}`)
  const fsDir = path.join(tmp, 'fs')
  try {
    await fs.mkdir(tmp, { mode: 0o700 })
    await fs.mkdir(fsDir, { mode: 0o755 })
    const stats = await extract(layer, compression, diffId, fsDir, opts)
    const record: LayerRecord = {
      chainId,
      diffId,
      parent: parent ?? null,
      digest: layer.digest,
      size: layer.size,
      unpackedBytes: stats.bytes,
    }
    const fsync = opts.fsync ?? true
    if (fsync) await syncFileSystem(tmp)
    await writeLayerRecord(path.join(tmp, 'layer.json'), record, fsync)
    if (fsync) await fsyncDir(tmp)
    throwIfAborted(opts.signal, `unpack layer ${layer.digest}`)
    const created = await publish(tmp, paths.layer(chainId), paths.layerMeta(chainId))
    if (fsync && created) await fsyncDir(paths.layers)
    return created
  } catch (err) {
    throw await explain(err, layer, opts.signal)
  } finally {
    // Whatever happened, the temporary directory goes (after a successful rename it is gone).
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => {})
  }
}

/** The one pass: blob → verify → decompress → verify diff id → entries. */
async function extract(layer: LayerBlob, compression: Compression, diffId: string, fsDir: string, opts: UnpackOptions): Promise<{ bytes: number }> {
  const blob = new BlobVerifier({ digest: layer.digest, size: layer.size, what: `layer ${layer.digest}` })
  const tarDigest = new BlobVerifier({ digest: diffId, what: `layer ${layer.digest} uncompressed` })
  let head: Buffer
  try {
    head = await readHead(layer.blobPath, 8)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('read', layer.blobPath, err)
    throw new StoreError('ERR_STORE_NOT_FOUND', `blob \`${layer.blobPath}\` is not there`, { path: layer.blobPath, digest: layer.digest, cause: err })
  }
  // What the blob really is (its magic bytes), not what its media type says.
  const uncompressed = sniffCompression(head) === 'none'
  // First the writer (it may refuse: no /proc, no openat2), then the streams it will consume.
  const writer = new SafeWriter(fsDir)
  const source = createReadStream(layer.blobPath, { highWaterMark: READ_CHUNK })
  const onProgress = opts.onProgress
  const measured = source.pipe(
    new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
        try {
          blob.update(chunk) // SizeMismatchError as soon as the blob is longer than it should be
          onProgress?.({ layer: layer.digest, bytes: blob.bytes, total: layer.size })
        } catch (err) {
          cb(err as Error)
          return
        }
        cb(null, chunk)
      },
    }),
  )
  source.on('error', (err) => measured.destroy(err))
  const tar = decompress(measured, compression)
  const onAbort = (): void => {
    tar.destroy(new StoreError('ERR_STORE_ABORTED', `unpack layer ${layer.digest}: aborted`, { cause: opts.signal?.reason }))
  }
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  try {
    // An uncompressed blob is the tar itself: entries that claim more than it holds are
    // refused at their header.
    const reader = new TarReader(writer, uncompressed ? { totalSize: layer.size } : {})
    for await (const chunk of tar) {
      throwIfAborted(opts.signal, `unpack layer ${layer.digest}`)
      tarDigest.update(chunk as Buffer)
      reader.write(chunk as Buffer)
    }
    reader.finish()
    try {
      blob.verify()
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err
      throw new StoreError('ERR_STORE_DIGEST_MISMATCH', `unpack layer ${layer.digest}: ${err.message}`, { digest: layer.digest, cause: err })
    }
    try {
      tarDigest.verify()
    } catch (err) {
      if (!(err instanceof DigestMismatchError)) throw err
      throw new StoreError('ERR_STORE_DIFF_ID_MISMATCH', `unpack layer ${layer.digest}: the uncompressed tar is ${err.actual}, not diff id ${diffId}`, {
        digest: layer.digest,
        cause: err,
      })
    }
    writer.finish()
    return { bytes: writer.stats.bytes }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
    writer.close()
    tar.destroy()
    measured.destroy()
    source.destroy()
    // The decompressor (and a zstd child) is gone once the stream has closed.
    if (!tar.closed) await new Promise<void>((resolve) => tar.once('close', () => resolve()))
  }
}

/**
 * Turns any failure into the `StoreError` that explains it best. A tar or decompression error
 * from a blob that does not match its digest is reported as the digest mismatch it really is.
 */
async function explain(err: unknown, layer: LayerBlob, signal: AbortSignal | undefined): Promise<unknown> {
  if (signal?.aborted) {
    return err instanceof StoreError && err.code === 'ERR_STORE_ABORTED'
      ? err
      : new StoreError('ERR_STORE_ABORTED', `unpack layer ${layer.digest}: aborted`, { cause: signal.reason })
  }
  const what = `unpack layer ${layer.digest}`
  if (err instanceof SizeMismatchError) {
    return new StoreError('ERR_STORE_SIZE_MISMATCH', `${what}: ${err.message}`, { digest: layer.digest, cause: err })
  }
  if (err instanceof StoreError) {
    if (err.code === 'ERR_STORE_BAD_TAR' || err.code === 'ERR_STORE_UNSAFE_TAR' || err.code === 'ERR_STORE_UNSUPPORTED') {
      if (!(await blobMatches(layer))) {
        return new StoreError('ERR_STORE_DIGEST_MISMATCH', `${what}: the blob does not match its digest (${err.message})`, { digest: layer.digest, cause: err })
      }
    }
    if (err.message.startsWith(what)) return err
    return new StoreError(err.code, `${what}: ${err.message}`, {
      ...(err.path !== undefined ? { path: err.path } : {}),
      ...(err.field !== undefined ? { field: err.field } : {}),
      digest: err.digest ?? layer.digest,
      cause: err,
    })
  }
  return new StoreError('ERR_STORE_IO', `${what}: ${(err as Error)?.message ?? String(err)}`, { digest: layer.digest, cause: err })
}

async function readHead(file: string, n: number): Promise<Buffer> {
  const fh = await fs.open(file, 'r')
  try {
    const buf = Buffer.alloc(n)
    const { bytesRead } = await fh.read(buf, 0, n, 0)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}

async function blobMatches(layer: LayerBlob): Promise<boolean> {
  try {
    const v = new BlobVerifier({ digest: layer.digest, size: layer.size })
    for await (const chunk of createReadStream(layer.blobPath, { highWaterMark: READ_CHUNK })) v.update(chunk as Buffer)
    v.verify()
    return true
  } catch {
    return false
  }
}

/**
 * Renames the finished temporary directory to the layer directory. When another unpack got
 * there first, ours is dropped (`false`). A directory without `layer.json` there is not a
 * layer (a half-removed one): it is moved aside and replaced.
 */
async function publish(tmp: string, dir: string, meta: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rename(tmp, dir)
      return true
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw ioError('rename into place', dir, err)
      if (await exists(meta)) return false
      if (attempt > 0) throw ioError('rename into place', dir, err)
      const aside = path.join(path.dirname(dir), `${TMP_PREFIX}${ownerTag()}-${randomBytes(6).toString('hex')}`)
      await fs.rename(dir, aside).catch(() => {})
      await fs.rm(aside, { recursive: true, force: true }).catch(() => {})
    }
  }
}

/**
 * Unpacks an image's layers, bottom first, each once per chain id (layers already unpacked
 * are not read), and returns their chain ids. Layers are independent directories, so up to
 * `concurrency` are unpacked at once; the first failure aborts the others, and the call
 * settles only once every one of them has cleaned up.
 *
 * @throws StoreError `ERR_STORE_BAD_IMAGE` when `layers` and `diffIds` differ in length.
 *
 * @example
 * ```ts
 * const chainIds = await unpackImageLayers(paths, (d) => paths.blob(d), manifest.layers, config.rootfs.diff_ids)
 * ```
 */
export async function unpackImageLayers(
  paths: StorePaths,
  blobs: (digest: string) => string,
  layers: readonly Descriptor[],
  diffIds: readonly string[],
  opts: UnpackImageOptions = {},
): Promise<string[]> {
  if (layers.length !== diffIds.length) {
    throw new StoreError('ERR_STORE_BAD_IMAGE', `the manifest has ${layers.length} layers but the config has ${diffIds.length} diff ids`, { field: 'diffIds' })
  }
  const ids = chainIdsOf(diffIds)
  for (const l of layers) compressionOf(l.mediaType) // refuse unknown media types before any work
  throwIfAborted(opts.signal, 'unpack image')
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 2))
  const inner = new AbortController()
  const onAbort = (): void => inner.abort(opts.signal?.reason)
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  const layerOpts: UnpackOptions = {
    signal: inner.signal,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.fsync !== undefined ? { fsync: opts.fsync } : {}),
  }
  let next = 0
  let failure: unknown
  const worker = async (): Promise<void> => {
    while (failure === undefined) {
      const i = next++
      if (i >= layers.length) return
      const l = layers[i]!
      try {
        await unpackLayer(paths, { blobPath: blobs(l.digest), mediaType: l.mediaType, digest: l.digest, size: l.size }, diffIds[i]!, i === 0 ? undefined : ids[i - 1], layerOpts)
      } catch (err) {
        if (failure === undefined) {
          // The first failure wins; the others are the aborts it caused.
          failure = err
          inner.abort(err)
        }
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, layers.length) }, worker))
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
  }
  if (failure !== undefined) throw failure
  return ids
}

/**
 * Removes the temporary directories that unpacks interrupted by a crash left in `layers/`
 * (`.tmp-*`). Directories of unpacks still running — in this process, or in another live
 * process using the same store — are kept. Returns how many were removed.
 *
 * @example
 * ```ts
 * await cleanLayerTemporaries(paths) // at store open
 * ```
 */
export async function cleanLayerTemporaries(paths: StorePaths): Promise<number> {
  let names: string[]
  try {
    names = await fs.readdir(paths.layers)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw ioError('read', paths.layers, err)
  }
  let removed = 0
  for (const name of names) {
    if (!name.startsWith(TMP_PREFIX)) continue
    if (ownerAlive(name.slice(TMP_PREFIX.length))) continue
    await fs.rm(path.join(paths.layers, name), { recursive: true, force: true }).catch((err) => {
      throw ioError('remove', path.join(paths.layers, name), err)
    })
    removed++
  }
  return removed
}


// ---------------------------------------------------------------------------------------------

let tag: string | undefined

/**
 * `<pid>.<start time>` of this process: temporaries named with it can be told apart from a
 * dead process's (whose pid may have been reused, but not with the same start time).
 */
function ownerTag(): string {
  tag ??= `${process.pid}.${startTime(process.pid) ?? '0'}`
  return tag
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // After the command name (in parentheses, may hold spaces): field 3 is the state, field 22
    // the start time. A zombie is as dead as a process gets.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    return fields[19]
  } catch {
    return undefined
  }
}

/** Whether the process a temporary's name points to is still running. */
function ownerAlive(rest: string): boolean {
  const m = /^(\d+)\.(\d+)-/.exec(rest)
  if (m === null) return false // not ours, or from an older naming: a leftover
  const pid = Number(m[1])
  return startTime(pid) === m[2]
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p)
    return true
  } catch {
    return false
  }
}

/**
 * Flushes the file system holding `dir` (`syncfs(2)` through coreutils' `sync --file-system`):
 * one call for thousands of files, instead of an fsync each.
 */
function syncFileSystem(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('sync', ['--file-system', dir], (err, _stdout, stderr) => {
      if (err) reject(new StoreError('ERR_STORE_IO', `sync --file-system \`${dir}\`: ${String(stderr).trim() || err.message}`, { path: dir, cause: err }))
      else resolve()
    })
  })
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
