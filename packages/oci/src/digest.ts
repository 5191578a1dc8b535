import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { DigestMismatchError, OciError, SizeMismatchError } from './errors.js'

/** The digest algorithms this package computes and accepts. */
export type DigestAlgorithm = 'sha256' | 'sha512'

/**
 * A content digest as it appears in descriptors: `sha256:` and 64 lowercase hex digits, or
 * `sha512:` and 128. Values of this type have been validated (by {@link parseDigest}, a schema,
 * or computed by {@link digestOf}).
 */
export type Digest = `sha256:${string}` | `sha512:${string}`

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 }
/** The OCI digest grammar: `algorithm ":" encoded`. */
const ALGORITHM_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/
const ENCODED_RE = /^[a-zA-Z0-9=_-]+$/

/** Shows a value inside an error message without flooding it. */
function show(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s)
}

/**
 * Explains what is wrong with a digest string, or returns `undefined` when it is valid.
 * @internal
 */
export function digestProblem(s: string): string | undefined {
  const colon = s.indexOf(':')
  if (s === '') return 'digest is empty'
  if (colon === -1) return `digest ${show(s)} has no algorithm: expected "sha256:<64 hex digits>"`
  const algorithm = s.slice(0, colon)
  const encoded = s.slice(colon + 1)
  if (algorithm === '') return `digest ${show(s)} has an empty algorithm before ':'`
  if (!ALGORITHM_RE.test(algorithm)) return `digest ${show(s)} has an invalid algorithm ${show(algorithm)}`
  if (encoded === '') return `digest ${show(s)} has nothing after '${algorithm}:'`
  if (!ENCODED_RE.test(encoded)) return `digest ${show(s)} has invalid characters after '${algorithm}:'`
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    return `digest ${show(s)} uses the unsupported algorithm ${show(algorithm)} (supported: sha256, sha512)`
  }
  const want = HEX_LENGTH[algorithm]
  if (!/^[0-9a-f]*$/.test(encoded)) {
    return /^[0-9a-fA-F]*$/.test(encoded)
      ? `digest ${show(s)} must use lowercase hex digits`
      : `digest ${show(s)} must be hex after '${algorithm}:'`
  }
  if (encoded.length !== want) return `digest ${show(s)}: ${algorithm} needs ${want} hex digits, got ${encoded.length}`
  return undefined
}

/**
 * Whether a string is a valid, supported digest.
 *
 * @example
 * ```ts
 * isDigest('sha256:' + 'a'.repeat(64)) // true
 * isDigest('sha256:ABC')               // false
 * ```
 */
export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && digestProblem(s) === undefined
}

/**
 * Validates a digest string and returns it typed as {@link Digest}. Throws an {@link OciError}
 * with code `ERR_OCI_INVALID_DIGEST` whose message says what is wrong (unknown algorithm,
 * wrong length, uppercase hex, …).
 *
 * @example
 * ```ts
 * const d = parseDigest('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
 * parseDigest('md5:abc') // throws: digest "md5:abc" uses the unsupported algorithm "md5" …
 * ```
 */
export function parseDigest(s: string): Digest {
  if (typeof s !== 'string') throw new OciError('ERR_OCI_INVALID_DIGEST', `digest must be a string, got ${typeof s}`)
  const problem = digestProblem(s)
  if (problem !== undefined) throw new OciError('ERR_OCI_INVALID_DIGEST', problem)
  return s as Digest
}

/**
 * Splits a digest into its algorithm and hex part.
 *
 * @example
 * ```ts
 * splitDigest(d) // { algorithm: 'sha256', hex: 'e3b0…b855' }
 * ```
 */
export function splitDigest(digest: Digest | string): { algorithm: DigestAlgorithm; hex: string } {
  const d = parseDigest(digest)
  const colon = d.indexOf(':')
  return { algorithm: d.slice(0, colon) as DigestAlgorithm, hex: d.slice(colon + 1) }
}

function checkAlgorithm(algorithm: string): DigestAlgorithm {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new OciError('ERR_OCI_INVALID_DIGEST', `unsupported digest algorithm ${show(String(algorithm))} (supported: sha256, sha512)`)
  }
  return algorithm
}

/**
 * The digest of some bytes; strings are hashed as UTF-8.
 *
 * @example
 * ```ts
 * digestOf('')                    // 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
 * digestOf(manifestBytes, 'sha512')
 * ```
 */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  const alg = checkAlgorithm(algorithm)
  return `${alg}:${createHash(alg).update(data).digest('hex')}` as Digest
}

/** What a blob is expected to be. */
export interface BlobExpectation {
  /** The digest it must hash to. Without it the digest is only computed (see `algorithm`). */
  digest?: Digest | string
  /** Its size in bytes. When given, more bytes fail at once and fewer fail at the end. */
  size?: number
  /** The algorithm to compute when `digest` is not given; default `sha256`. */
  algorithm?: DigestAlgorithm
  /** Names the content in error messages, e.g. `blob sha256:ab…` or `layer 2`; default `content`. */
  what?: string
}

function checkSize(size: number | undefined): number | undefined {
  if (size === undefined) return undefined
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new OciError('ERR_OCI_SIZE_MISMATCH', `expected size must be a non-negative integer, got ${String(size)}`)
  }
  return size
}

/**
 * Checks a blob's size and digest chunk by chunk. Feed it with {@link BlobVerifier.update} as
 * data arrives (it throws {@link SizeMismatchError} as soon as the announced size is passed) and
 * call {@link BlobVerifier.verify} at the end. Because the hash state lives here, one verifier
 * can span several HTTP responses when a download is resumed with `Range`.
 *
 * @example
 * ```ts
 * const v = new BlobVerifier({ digest: desc.digest, size: desc.size })
 * for await (const chunk of body) { v.update(chunk); await sink.write(chunk) }
 * v.verify() // throws DigestMismatchError or SizeMismatchError
 * ```
 */
export class BlobVerifier {
  /** The expected digest, or undefined when the digest is only computed. */
  readonly expectedDigest: Digest | undefined
  /** The expected size, if known. */
  readonly expectedSize: number | undefined
  /** The algorithm in use. */
  readonly algorithm: DigestAlgorithm
  #hash: Hash
  #bytes = 0
  #result: Digest | undefined
  #what: string

  constructor(expect: BlobExpectation = {}) {
    this.expectedDigest = expect.digest === undefined ? undefined : parseDigest(expect.digest)
    this.expectedSize = checkSize(expect.size)
    this.algorithm = this.expectedDigest !== undefined ? splitDigest(this.expectedDigest).algorithm : checkAlgorithm(expect.algorithm ?? 'sha256')
    this.#hash = createHash(this.algorithm)
    this.#what = expect.what ?? 'content'
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes
  }

  /** Whether {@link BlobVerifier.verify} (or {@link BlobVerifier.digest}) has been called. */
  get finished(): boolean {
    return this.#result !== undefined
  }

  /** Hashes a chunk. Throws {@link SizeMismatchError} once more bytes arrive than expected. */
  update(chunk: Uint8Array | string): void {
    if (this.#result !== undefined) throw new Error('BlobVerifier: update() after the digest was computed')
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength
    if (this.expectedSize !== undefined && this.#bytes + length > this.expectedSize) {
      this.#bytes += length
      throw new SizeMismatchError(this.expectedSize, this.#bytes, this.#what)
    }
    this.#hash.update(chunk)
    this.#bytes += length
  }

  /** Finishes hashing (once) and returns the digest of what was fed, without checking it. */
  digest(): Digest {
    this.#result ??= `${this.algorithm}:${this.#hash.digest('hex')}` as Digest
    return this.#result
  }

  /**
   * Finishes and checks: size first (a short blob is reported as such), then digest. Returns
   * the digest of the content.
   */
  verify(): Digest {
    const actual = this.digest()
    if (this.expectedSize !== undefined && this.#bytes !== this.expectedSize) {
      throw new SizeMismatchError(this.expectedSize, this.#bytes, this.#what)
    }
    if (this.expectedDigest !== undefined && actual !== this.expectedDigest) {
      throw new DigestMismatchError(this.expectedDigest, actual, this.#what)
    }
    return actual
  }
}

/**
 * Checks bytes already in memory against a digest (and size). Returns the digest.
 *
 * @example
 * ```ts
 * verifyBlob(manifestBytes, { digest: headers['docker-content-digest'], what: 'manifest' })
 * ```
 */
export function verifyBlob(data: Uint8Array | string, expect: BlobExpectation): Digest {
  const v = new BlobVerifier(expect)
  v.update(data)
  return v.verify()
}

/**
 * A pass-through stream that verifies what flows through it: it errors with
 * {@link SizeMismatchError} as soon as the expected size is passed (the extra bytes are not
 * forwarded), and at the end with {@link SizeMismatchError} if the content was short or
 * {@link DigestMismatchError} if it hashed differently. With no expected digest it only
 * computes one. After `'finish'`, {@link DigestVerifier.digest} holds the content's digest.
 *
 * @example
 * ```ts
 * import { pipeline } from 'node:stream/promises'
 * await pipeline(response.body, new DigestVerifier({ digest: desc.digest, size: desc.size }), file)
 * ```
 */
export class DigestVerifier extends Transform {
  /** The underlying chunk verifier (its `bytes` counts what has passed). */
  readonly verifier: BlobVerifier
  #digest: Digest | undefined

  constructor(expect: BlobExpectation = {}) {
    super()
    this.verifier = new BlobVerifier(expect)
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.verifier.bytes
  }

  /** The digest of the content, once the stream has ended successfully. */
  get digest(): Digest | undefined {
    return this.#digest
  }

  /** @internal */
  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk
    try {
      this.verifier.update(data)
    } catch (err) {
      callback(err as Error)
      return
    }
    callback(null, data)
  }

  /** @internal */
  override _flush(callback: TransformCallback): void {
    try {
      this.#digest = this.verifier.verify()
    } catch (err) {
      callback(err as Error)
      return
    }
    callback()
  }
}

/**
 * Reads a stream to its end and returns its digest and size, verifying them when expected
 * values are given. The stream is consumed; nothing is buffered.
 *
 * @example
 * ```ts
 * const { digest, size } = await digestStream(fs.createReadStream('layer.tar.gz'))
 * ```
 */
export async function digestStream(
  stream: AsyncIterable<Uint8Array | string>,
  expect: BlobExpectation = {},
): Promise<{ digest: Digest; size: number }> {
  const v = new BlobVerifier(expect)
  for await (const chunk of stream) v.update(chunk)
  const digest = v.verify()
  return { digest, size: v.bytes }
}
