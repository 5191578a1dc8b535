/** What went wrong, as a stable code. */
export type StoreErrorCode =
  | 'ERR_STORE_INVALID' // bad options or arguments (`field` names which)
  | 'ERR_STORE_NOT_FOUND' // an image, reference, blob, layer or snapshot that is not in the store
  | 'ERR_STORE_EXISTS' // a snapshot id (or other name) already taken
  | 'ERR_STORE_IN_USE' // removing something that is still referenced
  | 'ERR_STORE_DIGEST_MISMATCH' // content does not match its digest
  | 'ERR_STORE_SIZE_MISMATCH' // content is longer or shorter than its descriptor says
  | 'ERR_STORE_DIFF_ID_MISMATCH' // an unpacked layer does not match the config's rootfs.diff_ids
  | 'ERR_STORE_UNSAFE_TAR' // a tar entry that would write outside the layer (`path` names the entry)
  | 'ERR_STORE_BAD_TAR' // a malformed, truncated or oversized tar header or entry
  | 'ERR_STORE_BAD_IMAGE' // a manifest, config, index, layout or archive that breaks its spec
  | 'ERR_STORE_UNSUPPORTED' // a media type, compression or entry type the store cannot handle
  | 'ERR_STORE_MOUNT' // mounting or unmounting a snapshot failed
  | 'ERR_STORE_IO' // a file-system operation failed (`path` names the file)
  | 'ERR_STORE_ABORTED' // the caller's AbortSignal fired

/**
 * An image-store operation failed. The message carries the context, crun-style
 * ("unpack layer sha256:ab…: entry `../etc/passwd`: path escapes the layer"); `path`, `field`
 * and `digest` say which file, option or blob when there is one.
 *
 * @example
 * ```ts
 * try { await store.prepare('nope:latest', 'c1') }
 * catch (err) { if (err instanceof StoreError && err.code === 'ERR_STORE_NOT_FOUND') … }
 * ```
 */
export class StoreError extends Error {
  override readonly name = 'StoreError'
  readonly code: StoreErrorCode
  readonly path?: string
  readonly field?: string
  readonly digest?: string

  constructor(
    code: StoreErrorCode,
    message: string,
    extra: { path?: string; field?: string; digest?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.code = code
    if (extra.path !== undefined) this.path = extra.path
    if (extra.field !== undefined) this.field = extra.field
    if (extra.digest !== undefined) this.digest = extra.digest
  }
}

/** Wraps a Node fs error with what was being done, keeping it as `cause`. */
export function ioError(what: string, path: string, cause: unknown): StoreError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return new StoreError('ERR_STORE_IO', `${what} \`${path}\`: ${code ?? String(cause)}`, { path, cause })
}

/** Throws `ERR_STORE_ABORTED` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new StoreError('ERR_STORE_ABORTED', `${what}: aborted`, { cause: signal.reason })
}
