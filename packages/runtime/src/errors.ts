/**
 * Errors of `@ctr/runtime`. Every failure is a {@link RuntimeError} with a stable `code`, so
 * callers branch on the code and never on the message.
 */

/** The codes a {@link RuntimeError} carries. */
export type RuntimeErrorCode =
  /** An option (or a field of a user-supplied document such as a seccomp profile) is invalid; `field` names it. */
  | 'ERR_RUNTIME_INVALID_OPTIONS'
  /** A user name (or uid that must be named) is not in the image's /etc/passwd. */
  | 'ERR_RUNTIME_USER_NOT_FOUND'
  /** A group name is not in the image's /etc/group. */
  | 'ERR_RUNTIME_GROUP_NOT_FOUND'
  /** A file of the image (/etc/passwd, /etc/group) cannot be read safely: too large, not a regular file, unreadable. */
  | 'ERR_RUNTIME_IMAGE_FILE'
  /** Entrypoint and Cmd together leave nothing to run. */
  | 'ERR_RUNTIME_NO_COMMAND'
  /** A seccomp profile cannot be compiled into a filter (too large, unsupported action for this kernel interface). */
  | 'ERR_RUNTIME_SECCOMP'
  /** An image cannot be found, pulled or imported. */
  | 'ERR_RUNTIME_IMAGE'
  /** No such container. */
  | 'ERR_RUNTIME_NOT_FOUND'
  /** A container with that name or id exists already. */
  | 'ERR_RUNTIME_CONFLICT'
  /** The container is in a state that forbids the request (not running, already started, …). */
  | 'ERR_RUNTIME_STATE'
  /** The container process could not be started. */
  | 'ERR_RUNTIME_START'
  /** Resources of a container (mounts, cgroups, state) could not all be released. */
  | 'ERR_RUNTIME_CLEANUP'

/**
 * The error class of `@ctr/runtime`.
 *
 * @example
 * ```ts
 * import { resolveCapabilities, RuntimeError } from '@ctr/runtime'
 * try {
 *   resolveCapabilities({ capAdd: ['NET_ADMN'] })
 * } catch (err) {
 *   if (err instanceof RuntimeError && err.code === 'ERR_RUNTIME_INVALID_OPTIONS') {
 *     console.error(err.field, err.message) // 'capAdd.0' 'capAdd.0: unknown capability "NET_ADMN"'
 *   }
 * }
 * ```
 */
export class RuntimeError extends Error {
  override readonly name = 'RuntimeError'
  /** Stable machine-readable code. */
  readonly code: RuntimeErrorCode
  /** The option or document field at fault (dotted path such as `syscalls.3.args.0.op`), when there is one. */
  readonly field: string | undefined
  /** The file involved (an image's /etc/passwd, …), when there is one. */
  readonly path: string | undefined

  constructor(code: RuntimeErrorCode, message: string, details: { field?: string; path?: string; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    this.field = details.field
    this.path = details.path
  }
}

/** Shorthand for an `ERR_RUNTIME_INVALID_OPTIONS` error whose message starts with the field. */
export function invalidOption(field: string, message: string): RuntimeError {
  return new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', field === '' ? message : `${field}: ${message}`, { field })
}
