/** What went wrong, as a stable code. */
export type CgroupErrorCode =
  | 'ERR_CGROUP_NOT_DELEGATED'
  | 'ERR_CGROUP_CONTROLLER_MISSING'
  | 'ERR_CGROUP_UNSUPPORTED'
  | 'ERR_CGROUP_EXISTS'
  | 'ERR_CGROUP_INVALID'
  | 'ERR_CGROUP_BUSY'
  | 'ERR_CGROUP_NOT_FOUND'
  | 'ERR_CGROUP_IO'

/**
 * A cgroup operation failed. `path` names the file or directory, `hint` says what to change
 * on the host when that is the fix.
 *
 * @example
 * ```ts
 * try { await Cgroup.create('job', { memory: { max: 64 * 2 ** 20 } }) }
 * catch (err) { if (err instanceof CgroupError) console.error(err.code, err.message) }
 * ```
 */
export class CgroupError extends Error {
  override readonly name = 'CgroupError'
  readonly code: CgroupErrorCode
  readonly path?: string
  readonly hint?: string
  /** The errno name when a system call failed (`EBUSY`, `EACCES`, …). */
  readonly errnoCode?: string

  constructor(code: CgroupErrorCode, message: string, details: { path?: string; hint?: string; cause?: unknown; errnoCode?: string } = {}) {
    super(details.hint ? `${message} (${details.hint})` : message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    if (details.path !== undefined) this.path = details.path
    if (details.hint !== undefined) this.hint = details.hint
    if (details.errnoCode !== undefined) this.errnoCode = details.errnoCode
  }
}
