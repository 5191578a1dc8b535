/**
 * Layer compression: which one a media type or a blob's first bytes name, and streams that
 * decompress or compress gzip and zstd.
 *
 * Node.js 20 has no zstd in `node:zlib` (it arrived in 22.15), so zstd goes through
 * `zlib.createZstd*` when this Node has it and otherwise through Debian's `zstd` binary as a
 * child process, whose life is tied to the returned stream: destroying the stream (or an error
 * on either side) kills the child, and the stream's `'close'` comes only once it is reaped.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Readable, type Transform } from 'node:stream'
import { pipeline } from 'node:stream'
import * as zlib from 'node:zlib'
import { layerCompression } from '@ctr/oci'
import { StoreError } from '../errors.js'

/** The compression of a layer blob. */
export type Compression = 'gzip' | 'zstd' | 'none'

/** Options of {@link compress}. */
export interface CompressOptions {
  /** gzip: 0–9 (default 6, as `gzip` and containerd); zstd: 1–19 (default 3, as `zstd`). */
  level?: number
}

/** Size of the chunks the decompressors emit: big enough that per-chunk costs vanish. */
const CHUNK = 128 * 1024

/** Bytes needed to tell gzip, zstd and the formats we refuse apart. */
const SNIFF_BYTES = 6

/**
 * The compression a layer media type names: every OCI layer type (including the deprecated
 * non-distributable ones) and every Docker one (including foreign layers).
 *
 * @throws StoreError `ERR_STORE_UNSUPPORTED` for anything that is not a layer media type.
 *
 * @example
 * ```ts
 * compressionOf('application/vnd.oci.image.layer.v1.tar+zstd')       // 'zstd'
 * compressionOf('application/vnd.docker.image.rootfs.diff.tar.gzip') // 'gzip'
 * compressionOf('application/vnd.oci.image.layer.v1.tar')            // 'none'
 * ```
 */
export function compressionOf(mediaType: string): Compression {
  const c = layerCompression(mediaType)
  if (c === undefined) {
    throw new StoreError('ERR_STORE_UNSUPPORTED', `media type \`${mediaType}\` is not a layer type this store can unpack (tar, tar+gzip or tar+zstd)`, {
      field: 'mediaType',
    })
  }
  return c
}

/** What the first bytes of a blob say, including formats layers may not use. */
type Sniffed = Compression | 'bzip2' | 'xz'

function sniff(head: Uint8Array): Sniffed {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4) {
    // zstd frame magic 0xFD2FB528, or a skippable frame 0x184D2A50–0x184D2A5F (little endian).
    if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd'
    if ((head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd'
  }
  if (head.length >= 3 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return 'bzip2'
  if (head.length >= 6 && head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a && head[5] === 0x00) return 'xz'
  return 'none'
}

/**
 * The compression the first bytes of a blob show (gzip `1f 8b`, zstd `28 b5 2f fd` or a zstd
 * skippable frame); anything else is taken as an uncompressed tar, as containerd does.
 *
 * @example
 * ```ts
 * sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])) // 'gzip'
 * sniffCompression(Buffer.from('etc/passwd\0'))     // 'none'
 * ```
 */
export function sniffCompression(head: Uint8Array): Compression {
  const s = sniff(head)
  return s === 'bzip2' || s === 'xz' ? 'none' : s
}

/** `zlib.createZstd*` of Node ≥ 22.15, when this Node has them. */
function nativeZstd(kind: 'compress' | 'decompress', level?: number): Transform | undefined {
  const z = zlib as unknown as {
    createZstdCompress?: (o: object) => Transform
    createZstdDecompress?: (o: object) => Transform
    constants: Record<string, number>
  }
  if (kind === 'decompress') return z.createZstdDecompress?.({ chunkSize: CHUNK })
  const param = z.constants.ZSTD_c_compressionLevel
  if (z.createZstdCompress === undefined || param === undefined) return undefined
  return z.createZstdCompress({ chunkSize: CHUNK, params: level === undefined ? {} : { [param]: level } })
}

/** Reads at least `n` bytes (fewer only at the end of the stream) and puts them back. */
async function peek(input: Readable, n: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let have = 0
  while (have < n) {
    const chunk = input.read() as Buffer | string | null
    if (chunk !== null) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      parts.push(b)
      have += b.length
      continue
    }
    if (input.readableEnded || input.destroyed) break
    // Wait for more data, the end, or an error (which the caller's pipeline reports).
    await new Promise<void>((resolve) => {
      const done = (): void => {
        input.off('readable', done)
        input.off('end', done)
        input.off('error', done)
        input.off('close', done)
        resolve()
      }
      input.on('readable', done)
      input.on('end', done)
      input.on('error', done)
      input.on('close', done)
    })
    if (input.errored) throw input.errored
  }
  const head = Buffer.concat(parts)
  if (head.length > 0) input.unshift(head)
  return head
}

/**
 * Streams `input` through a zlib transform, as an async generator owning both ends. An error
 * of the codec itself (corrupt data) becomes a `StoreError` naming the codec; an error of the
 * input (a read error, a failed digest check upstream) passes through as it is.
 */
async function* throughTransform(input: Readable, t: Transform, what: string, code: 'ERR_STORE_BAD_TAR' | 'ERR_STORE_IO' = 'ERR_STORE_BAD_TAR'): AsyncGenerator<Buffer> {
  let inputError: unknown
  input.once('error', (err) => {
    inputError = err
  })
  // pipeline() ties the two together: an error on either side destroys both; we only read t.
  pipeline(input, t, () => {})
  try {
    for await (const chunk of t) yield chunk as Buffer
  } catch (err) {
    if (inputError !== undefined) throw inputError
    if (err instanceof StoreError) throw err
    throw new StoreError(code, `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  } finally {
    input.destroy()
    t.destroy()
  }
}

/**
 * Streams `input` through a child process (`zstd`), as an async generator. The child is
 * killed and reaped whenever the generator ends early, so no process or pipe outlives it.
 */
async function* throughChild(
  input: Readable,
  command: string,
  args: string[],
  what: string,
  failCode: 'ERR_STORE_BAD_TAR' | 'ERR_STORE_IO',
): AsyncGenerator<Buffer> {
  const child: ChildProcess = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const stderr: Buffer[] = []
  let stderrBytes = 0
  child.stderr!.on('data', (c: Buffer) => {
    // Keep the first few KiB: enough for zstd's one-line diagnostics.
    if (stderrBytes < 4096) stderr.push(c)
    stderrBytes += c.length
  })
  let spawnError: NodeJS.ErrnoException | undefined
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = err
    })
    // 'close' comes after 'exit' and after stdio closed, also when spawning failed.
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  let inputError: unknown
  // The child's stdin is fed by a pipeline; EPIPE (the child died) is reported through its exit.
  pipeline(input, child.stdin!, (err) => {
    if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE' && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') inputError = err
  })
  let finished = false
  try {
    try {
      for await (const chunk of child.stdout!) yield chunk as Buffer
    } catch (err) {
      if (spawnError === undefined) throw err
    }
    const { code, signal } = await exited
    if (spawnError !== undefined) {
      throw spawnError.code === 'ENOENT'
        ? new StoreError(
            'ERR_STORE_UNSUPPORTED',
            `${what}: this Node.js (${process.version}) has no zstd codec and the \`${command}\` program is not installed (Debian: apt-get install zstd)`,
            { cause: spawnError },
          )
        : new StoreError('ERR_STORE_IO', `${what}: cannot run \`${command}\`: ${spawnError.code ?? spawnError.message}`, { cause: spawnError })
    }
    // The input failing (a read error, a digest check) explains a truncated stream better
    // than the child's complaint about it.
    if (inputError !== undefined) throw inputError
    if (code !== 0) {
      const text = Buffer.concat(stderr).toString('utf8').trim().replace(/\s+/g, ' ')
      throw new StoreError(failCode, `${what}: \`${command}\` exited with ${code ?? signal}${text ? `: ${text}` : ''}`)
    }
    finished = true
  } finally {
    if (!finished) {
      input.destroy()
      child.stdin!.destroy()
      child.stdout!.destroy()
      if (child.exitCode === null && child.signalCode === null && spawnError === undefined) child.kill('SIGKILL')
    }
    // Reap before the stream reports 'close': no zombie and no open pipe outlive it.
    await exited
  }
}

/**
 * Decompresses a layer blob. The first bytes decide: gzip and zstd are recognised by their
 * magic, anything else passes through as an uncompressed tar. When the magic and the media
 * type's `hint` disagree, the magic wins, as in containerd (registries have served
 * uncompressed layers under gzip media types, and the reverse). bzip2 and xz, which Docker
 * once accepted but OCI never did, are refused.
 *
 * Errors in the compressed data are `StoreError`s with `ERR_STORE_BAD_TAR`; a missing `zstd`
 * program (on a Node.js without zstd) is `ERR_STORE_UNSUPPORTED`. Destroying the returned
 * stream stops everything, including a `zstd` child process, which is reaped before the stream
 * emits `'close'`.
 *
 * @example
 * ```ts
 * const tar = decompress(createReadStream(blob), compressionOf(desc.mediaType))
 * for await (const chunk of tar) parser.write(chunk)
 * ```
 */
export function decompress(input: Readable, hint?: Compression): Readable {
  async function* run(): AsyncGenerator<Buffer> {
    let handedOver = false
    try {
      const head = await peek(input, SNIFF_BYTES)
      const kind = sniff(head)
      if (kind === 'bzip2' || kind === 'xz') {
        throw new StoreError('ERR_STORE_UNSUPPORTED', `layer is ${kind}-compressed${hint ? ` (its media type says ${hint})` : ''}; OCI layers are tar, tar+gzip or tar+zstd`)
      }
      handedOver = true
      if (kind === 'none') {
        for await (const chunk of input) yield chunk as Buffer
        return
      }
      if (kind === 'gzip') {
        yield* throughTransform(input, zlib.createGunzip({ chunkSize: CHUNK }), 'gzip')
        return
      }
      const native = nativeZstd('decompress')
      if (native !== undefined) yield* throughTransform(input, native, 'zstd')
      else yield* throughChild(input, 'zstd', ['-d', '-c', '-q', '--no-progress'], 'zstd', 'ERR_STORE_BAD_TAR')
    } finally {
      if (!handedOver) input.destroy()
    }
  }
  return owning(run(), input)
}

/**
 * A stream of what `gen` yields that, when destroyed, destroys `input` first: a generator
 * waiting for its input to end would otherwise never get to run its cleanup.
 */
function owning(gen: AsyncGenerator<Buffer>, input: Readable): Readable {
  const out = Readable.from(gen, { objectMode: false, highWaterMark: CHUNK })
  const destroy = out._destroy.bind(out)
  out._destroy = (err, cb) => {
    input.destroy()
    destroy(err, cb)
  }
  return out
}

function checkLevel(kind: Compression, level: number | undefined): void {
  if (level === undefined || kind === 'none') return
  const [min, max] = kind === 'gzip' ? [0, 9] : [1, 19]
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new StoreError('ERR_STORE_INVALID', `${kind} compression level must be an integer from ${min} to ${max}, got ${String(level)}`, {
      field: 'level',
    })
  }
}

/**
 * Compresses a stream (a layer tar) with gzip or zstd; `'none'` returns the input itself.
 * zstd uses every core (`-T0`) when it runs as the `zstd` program; the output of either codec
 * is a single standard frame any tool reads.
 *
 * @throws StoreError `ERR_STORE_INVALID` (`field: 'level'`) for a level out of range, at once.
 *
 * @example
 * ```ts
 * await pipeline(compress(tarStream, 'zstd', { level: 3 }), createWriteStream('layer.tar.zst'))
 * ```
 */
export function compress(input: Readable, kind: Compression, opts: CompressOptions = {}): Readable {
  checkLevel(kind, opts.level)
  if (kind === 'none') return input
  if (kind === 'gzip') {
    const gz = zlib.createGzip({ level: opts.level ?? 6, chunkSize: CHUNK })
    return owning(throughTransform(input, gz, 'gzip', 'ERR_STORE_IO'), input)
  }
  if (kind !== 'zstd') {
    throw new StoreError('ERR_STORE_INVALID', `unknown compression \`${String(kind)}\``, { field: 'kind' })
  }
  const level = opts.level ?? 3
  const native = nativeZstd('compress', level)
  const gen =
    native !== undefined
      ? throughTransform(input, native, 'zstd', 'ERR_STORE_IO')
      : throughChild(input, 'zstd', ['-c', '-q', '--no-progress', `-${level}`, '-T0'], 'zstd', 'ERR_STORE_IO')
  return owning(gen, input)
}
