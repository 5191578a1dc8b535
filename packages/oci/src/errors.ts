/** What went wrong, as a stable code. */
export type OciErrorCode =
  | 'ERR_OCI_INVALID_MANIFEST'
  | 'ERR_OCI_INVALID_CONFIG'
  | 'ERR_OCI_INVALID_LAYOUT'
  | 'ERR_OCI_INVALID_DOCUMENT'
  | 'ERR_OCI_UNSUPPORTED_MEDIA_TYPE'
  | 'ERR_OCI_INVALID_REFERENCE'
  | 'ERR_OCI_INVALID_DIGEST'
  | 'ERR_OCI_DIGEST_MISMATCH'
  | 'ERR_OCI_SIZE_MISMATCH'
  | 'ERR_OCI_INVALID_PLATFORM'
  | 'ERR_OCI_PLATFORM_NOT_FOUND'

/** One problem found in a document, e.g. `{ path: 'manifest.layers[2].digest', message: '…' }`. */
export interface OciIssue {
  /** Where in the document: the document's name followed by the field path. */
  readonly path: string
  /** What is wrong there. */
  readonly message: string
}

/**
 * Every error this package throws. `code` is stable; `message` names the field (for documents)
 * or the part of the input (for references, digests and platforms) that is wrong.
 *
 * @example
 * ```ts
 * try { parseManifest(body, contentType) }
 * catch (err) {
 *   if (err instanceof OciError && err.code === 'ERR_OCI_INVALID_MANIFEST') console.error(err.issues)
 * }
 * ```
 */
export class OciError extends Error {
  override readonly name: string = 'OciError'
  /** A stable code, see {@link OciErrorCode}. */
  readonly code: OciErrorCode
  /** For documents: the path of the first offending field, e.g. `manifest.layers[2].digest`. */
  readonly path?: string
  /** For documents: every problem found, the first of which is in `message`. */
  readonly issues?: readonly OciIssue[]

  constructor(code: OciErrorCode, message: string, details: { path?: string; issues?: readonly OciIssue[]; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    if (details.path !== undefined) this.path = details.path
    if (details.issues !== undefined) this.issues = details.issues
  }
}

/**
 * Content did not hash to the digest it was fetched or stored under.
 *
 * @example
 * ```ts
 * try { verifyBlob(bytes, { digest: desc.digest, size: desc.size }) }
 * catch (err) { if (err instanceof DigestMismatchError) console.error(err.expected, err.actual) }
 * ```
 */
export class DigestMismatchError extends OciError {
  override readonly name: string = 'DigestMismatchError'
  /** The digest the content should have. */
  readonly expected: string
  /** The digest the content has. */
  readonly actual: string

  constructor(expected: string, actual: string, what = 'content') {
    super('ERR_OCI_DIGEST_MISMATCH', `${what} digest mismatch: expected ${expected}, got ${actual}`)
    this.expected = expected
    this.actual = actual
  }
}

/**
 * Content was longer or shorter than the size it was announced with. When it is too long the
 * error is raised as soon as the limit is passed, so `actual` is then the count seen so far
 * (and `exceeded` is true).
 *
 * @example
 * ```ts
 * stream.on('error', (err) => {
 *   if (err instanceof SizeMismatchError) console.error(`${err.actual} bytes, wanted ${err.expected}`)
 * })
 * ```
 */
export class SizeMismatchError extends OciError {
  override readonly name: string = 'SizeMismatchError'
  /** The announced size in bytes. */
  readonly expected: number
  /** The bytes seen: the whole content, or the count when the limit was passed. */
  readonly actual: number
  /** True when the content ran past `expected` (it was cut off there). */
  readonly exceeded: boolean

  constructor(expected: number, actual: number, what = 'content') {
    const exceeded = actual > expected
    super(
      'ERR_OCI_SIZE_MISMATCH',
      exceeded
        ? `${what} size mismatch: expected ${expected} bytes, got more (at least ${actual})`
        : `${what} size mismatch: expected ${expected} bytes, got ${actual}`,
    )
    this.expected = expected
    this.actual = actual
    this.exceeded = exceeded
  }
}
