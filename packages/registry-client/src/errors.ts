/** What went wrong, as a stable code. */
export type RegistryErrorCode =
  | 'ERR_REGISTRY_UNAUTHORIZED' // 401 after authenticating (or no credentials for a private repository)
  | 'ERR_REGISTRY_DENIED' // 403
  | 'ERR_REGISTRY_NOT_FOUND' // 404: repository, manifest, blob or tag unknown
  | 'ERR_REGISTRY_RATE_LIMITED' // 429 after the retries
  | 'ERR_REGISTRY_UNAVAILABLE' // 5xx or network failure after the retries
  | 'ERR_REGISTRY_PROTOCOL' // a reply that breaks the distribution spec (bad Content-Range, missing Location …)
  | 'ERR_REGISTRY_DIGEST_MISMATCH' // content does not match its digest (or Docker-Content-Digest)
  | 'ERR_REGISTRY_SIZE_MISMATCH'
  | 'ERR_REGISTRY_INVALID' // bad options or arguments
  | 'ERR_REGISTRY_AUTH_CONFIG' // docker config.json or a credential helper failed
  | 'ERR_REGISTRY_ABORTED'

/** Rate-limit figures a registry sent (Docker Hub: `ratelimit-limit`, `ratelimit-remaining`). */
export interface RateLimit {
  limit?: string
  remaining?: string
  retryAfterMs?: number
}

/**
 * A registry operation failed. `status`, `url` and the registry's own error `details`
 * (the `errors` array of the distribution spec) are kept when there are any.
 *
 * @example
 * ```ts
 * try { await client.resolve('127.0.0.1:5000/nope:latest') }
 * catch (err) { if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_NOT_FOUND') … }
 * ```
 */
export class RegistryError extends Error {
  override readonly name = 'RegistryError'
  readonly code: RegistryErrorCode
  readonly status?: number
  readonly url?: string
  readonly details?: { code?: string; message?: string; detail?: unknown }[]
  readonly rateLimit?: RateLimit

  constructor(
    code: RegistryErrorCode,
    message: string,
    extra: { status?: number; url?: string; details?: RegistryError['details']; rateLimit?: RateLimit; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.code = code
    if (extra.status !== undefined) this.status = extra.status
    if (extra.url !== undefined) this.url = extra.url
    if (extra.details !== undefined) this.details = extra.details
    if (extra.rateLimit !== undefined) this.rateLimit = extra.rateLimit
  }
}

/** The error code for an HTTP status that ended a request. */
export function codeForStatus(status: number): RegistryErrorCode {
  if (status === 401) return 'ERR_REGISTRY_UNAUTHORIZED'
  if (status === 403) return 'ERR_REGISTRY_DENIED'
  if (status === 404) return 'ERR_REGISTRY_NOT_FOUND'
  if (status === 429) return 'ERR_REGISTRY_RATE_LIMITED'
  if (status >= 500) return 'ERR_REGISTRY_UNAVAILABLE'
  return 'ERR_REGISTRY_PROTOCOL'
}
