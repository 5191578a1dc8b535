/** Resource names for `rlimits`, in the kernel's numbering (RLIMIT_CPU = 0 …). */
export const RLIMITS = [
  'cpu', 'fsize', 'data', 'stack', 'core', 'rss', 'nproc', 'nofile', 'memlock', 'as', 'locks',
  'sigpending', 'msgqueue', 'nice', 'rtprio', 'rttime',
] as const

export type RlimitName = (typeof RLIMITS)[number]

/** The kernel's number for a resource name. */
export function rlimitNumber(name: RlimitName): number {
  return RLIMITS.indexOf(name)
}
