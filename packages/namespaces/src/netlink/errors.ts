import { errnoName } from '../errors.js'

// glibc's strerror text for the errnos rtnetlink returns most (crun style: "EEXIST (File exists)").
const TEXT: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ERANGE: 'Numerical result out of range',
  ENOSPC: 'No space left on device',
  EOPNOTSUPP: 'Operation not supported',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETUNREACH: 'Network is unreachable',
  ENETDOWN: 'Network is down',
  ENOBUFS: 'No buffer space available',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EPROTONOSUPPORT: 'Protocol not supported',
  ELOOP: 'Too many levels of symbolic links',
  ENOTSUP: 'Operation not supported',
  EMFILE: 'Too many open files',
  ENOSYS: 'Function not implemented',
}

/**
 * A netlink request failed: the kernel answered with an error, or the socket did. The message
 * names the operation and the errno, crun style, plus the kernel's own words when it gave some:
 * `add address 10.0.0.1/24 to veth0: EEXIST (File exists)`.
 *
 * @example
 * ```ts
 * try { await nl.setUp('nope') } catch (err) {
 *   if (err instanceof NetlinkError && err.errnoCode === 'ENODEV') console.log(err.operation) // "set nope up"
 * }
 * ```
 */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError'
  readonly code = 'ERR_NETLINK'
  /** The errno number (positive). */
  readonly errno: number
  /** The errno name: `EEXIST`, `ENODEV`, … */
  readonly errnoCode: string
  /** What was being done, e.g. `add address 10.88.0.1/16 to br0`. */
  readonly operation: string
  /** The kernel's extended-ack message, when it sent one. */
  readonly kernelMessage?: string

  constructor(operation: string, errno: number, details: { kernelMessage?: string; cause?: unknown } = {}) {
    const errnoCode = errno === 95 ? 'EOPNOTSUPP' : errnoName(errno) // Linux's name for 95, as iproute2 says
    const text = TEXT[errnoCode] ?? `errno ${errno}`
    super(
      `${operation}: ${errnoCode} (${text})${details.kernelMessage ? `: ${details.kernelMessage}` : ''}`,
      details.cause === undefined ? undefined : { cause: details.cause },
    )
    this.errno = errno
    this.errnoCode = errnoCode
    this.operation = operation
    if (details.kernelMessage) this.kernelMessage = details.kernelMessage
  }
}
