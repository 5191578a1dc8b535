import { errnoName } from '@ctr/native'

/** Human text for an errno name, e.g. `EPERM` → "Operation not permitted". */
function describeErrno(code: string, errno: number): string {
  const known: Record<string, string> = {
    EPERM: 'Operation not permitted',
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EINVAL: 'Invalid argument',
    EBUSY: 'Device or resource busy',
    ENOTDIR: 'Not a directory',
    EEXIST: 'File exists',
    ENOSPC: 'No space left on device',
    EROFS: 'Read-only file system',
    ENOEXEC: 'Exec format error',
    EMFILE: 'Too many open files',
    ENOSYS: 'Function not implemented',
  }
  return known[code] ?? `errno ${errno}`
}

/** The errno name for a number, e.g. 2 → `ENOENT` (`@ctr/native`'s). */
export { errnoName }

/**
 * The child failed before it could exec: a namespace could not be joined, a mount or another
 * step failed, or the program could not be executed. Nothing is left behind: the child has
 * been reaped and its mounts died with its mount namespace.
 *
 * @example
 * ```ts
 * try { await spawn({ argv: ['/nonexistent'] }) }
 * catch (err) { if (err instanceof SpawnError) console.log(err.code, err.step) } // ENOENT exec /nonexistent
 * ```
 */
export class SpawnError extends Error {
  override readonly name = 'SpawnError'
  /** The errno name: `ENOENT`, `EPERM`, … */
  readonly code: string
  /** The errno number. */
  readonly errno: number
  /** What the child was doing, e.g. `mount proc on /proc` or `exec /bin/sh`. */
  readonly step: string
  /** The system call, where known. */
  readonly syscall?: string
  /** The path involved, where there is one. */
  readonly path?: string

  constructor(step: string, errno: number, details: { syscall?: string; path?: string; cause?: unknown } = {}) {
    const code = errnoName(errno)
    super(`${step}: ${code} (${describeErrno(code, errno)})`, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    this.errno = errno
    this.step = step
    if (details.syscall !== undefined) this.syscall = details.syscall
    if (details.path !== undefined) this.path = details.path
  }
}

/** Options were rejected before anything was created. `field` names the option. */
export class InvalidOptionsError extends Error {
  override readonly name = 'InvalidOptionsError'
  readonly code = 'ERR_CTR_INVALID_OPTIONS'
  /** Dotted path of the offending option, e.g. `rootfs.mounts.0.target`. */
  readonly field: string

  constructor(field: string, message: string) {
    super(`invalid option ${field || '(options)'}: ${message}`)
    this.field = field
  }
}

/** The operation was aborted through its AbortSignal. */
export class AbortError extends Error {
  override readonly name = 'AbortError'
  readonly code = 'ABORT_ERR'
  constructor(cause?: unknown) {
    super('the operation was aborted', cause === undefined ? undefined : { cause })
  }
}
