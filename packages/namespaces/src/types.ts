import type { Readable, Writable } from 'node:stream'
import type { NamespaceType } from './ids.js'
import type { RlimitName } from './rlimits.js'

/**
 * How one of the child's standard streams is connected: `'pipe'` gives a Node stream on
 * the {@link Child}, `'inherit'` passes ours, `'ignore'` connects `/dev/null`, a number passes
 * that fd of ours.
 */
export type Stdio = 'pipe' | 'inherit' | 'ignore' | number

/** One line of a uid or gid map: `size` ids from `containerId` inside map to `hostId` outside. */
export interface IdMapEntry {
  containerId: number
  hostId: number
  size: number
}

/** An extra mount inside the root filesystem. Targets are resolved inside the root (symlinks cannot escape it). */
export type MountSpec =
  | { type: 'bind'; source: string; target: string; readonly?: boolean }
  | { type: 'tmpfs'; target: string; size?: string | number; mode?: number; readonly?: boolean }

/**
 * The root filesystem of the child. Before exec the child, in its own mount namespace, makes
 * mount propagation private, mounts `filesystem` on `path` or else binds `path` onto itself
 * (pivot_root needs a mount point), mounts `/proc`, a tmpfs `/dev` with
 * the standard device nodes, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, a read-only `/sys`,
 * applies `mounts`, pivots into it and detaches the old root, then masks `maskedPaths` and
 * makes `readonlyPaths` read-only (both default to runc's lists).
 */
export interface RootfsOptions {
  /** Host directory that becomes `/`. */
  path: string
  /**
   * A file system to mount on `path` first, inside the child's new mount namespace — the
   * overlay of an image snapshot, say. It then exists only in that namespace and goes away
   * with it, so a crashed parent leaves no mount behind on the host.
   *
   * @example
   * ```ts
   * // an overlay whose lowerdir names are short and relative to /var/lib/ctr/l (deep images)
   * { type: 'overlay', source: 'overlay', cwd: '/var/lib/ctr/l',
   *   data: 'lowerdir=a1:b2,upperdir=/var/lib/ctr/snapshots/c1/upper,workdir=/var/lib/ctr/snapshots/c1/work' }
   * ```
   */
  filesystem?: RootFilesystem
  /** Mount the root read-only (the mounts on it stay as they are). */
  readonly?: boolean
  mounts?: MountSpec[]
  /** Paths hidden from the child: `/dev/null` over files, an empty read-only tmpfs over directories. */
  maskedPaths?: string[]
  /** Paths bound read-only. */
  readonlyPaths?: string[]
}

/** The file system mounted on {@link RootfsOptions.path} in the child's mount namespace. */
export interface RootFilesystem {
  /** File system type (`overlay`, `tmpfs`, …). */
  type: string
  /** Mount source; defaults to the type. */
  source?: string
  /** Mount data (options). Relative paths in it are resolved against `cwd`. */
  data?: string
  /** mount(2) flags ({@link MountFlag} values). */
  flags?: number
  /** The directory the child changes into before mounting, for relative paths in `data`. */
  cwd?: string
}

/**
 * A seccomp filter: a compiled classic-BPF program (`struct sock_filter[]`, 8 bytes per
 * instruction) loaded last, just before exec. Without `CAP_SYS_ADMIN` it needs
 * `noNewPrivileges`.
 */
export interface SeccompFilter {
  filter: Uint8Array
  /** `SECCOMP_FILTER_FLAG_*` bits for seccomp(2). */
  flags?: number
}

/** Per-resource limits; `'unlimited'` is RLIM_INFINITY. Unset resources are inherited. */
export type Rlimits = Partial<Record<RlimitName, { soft: number | 'unlimited'; hard: number | 'unlimited' }>>

/** The five capability sets, by name (`'CAP_NET_ADMIN'`). Unset sets are left as they are. */
export interface CapabilitySets {
  bounding?: string[]
  effective?: string[]
  permitted?: string[]
  inheritable?: string[]
  ambient?: string[]
}

/** What the child process is: program, environment, identity, limits and stdio. */
export interface ProcessOptions {
  /** The program and its arguments. `argv[0]` is searched in `env.PATH` when it has no `/`. */
  argv: string[]
  /**
   * The whole environment. Defaults to a PATH only, as runc does, never the parent's
   * environment, so nothing of the host leaks in by accident.
   */
  env?: Record<string, string>
  /** Working directory (inside the root filesystem when there is one). Default `/` with a rootfs. */
  cwd?: string
  /** Identity after setup. With a new user namespace the default is uid 0, gid 0 inside it. */
  user?: { uid: number; gid: number; groups?: number[] }
  rlimits?: Rlimits
  capabilities?: CapabilitySets
  /** Set `no_new_privs`: setuid binaries and file capabilities no longer raise privileges. */
  noNewPrivileges?: boolean
  /** A seccomp filter loaded last, after no_new_privs (see {@link SeccompFilter}). */
  seccomp?: SeccompFilter
  umask?: number
  /** Standard streams; default `['ignore', 'inherit', 'inherit']`. */
  stdio?: [Stdio, Stdio, Stdio]
  /** Further fds of ours the child gets as 3, 4, … Every other fd is closed in the child. */
  fds?: number[]
  /** Start a new session (`setsid`). */
  setsid?: boolean
  /** Make this child fd (e.g. 0) the controlling terminal; implies `setsid`. */
  controllingTerminal?: number
  /** The cgroups the child is in before it execs (`@ctr/cgroups` computes these). */
  cgroup?: CgroupPlacement
  /** Aborting kills the child with SIGKILL (or rejects before it starts). */
  signal?: AbortSignal
}

/**
 * Where a child is placed before its first instruction runs, so no fork of it can escape
 * the limits.
 */
export interface CgroupPlacement {
  /** A cgroup2 directory: the child is cloned straight into it (`CLONE_INTO_CGROUP`). */
  unified?: string
  /** cgroup v1 directories: the parent writes the child's pid into each `cgroup.procs` while the child waits. */
  legacy?: string[]
}

/** Options of {@link spawn}. */
export interface SpawnOptions extends ProcessOptions {
  /** Namespaces to create. */
  namespaces?: NamespaceType[]
  /** Namespaces to join: a pid (its namespace of that type) or a namespace file path. */
  join?: Partial<Record<NamespaceType, number | string>>
  /** With a new user namespace; default maps 0 to our effective uid, size 1. */
  uidMap?: IdMapEntry[]
  gidMap?: IdMapEntry[]
  /** Whether setgroups(2) is allowed in the new user namespace (default: allow for root). */
  setgroups?: 'allow' | 'deny'
  /** Host name in the new uts namespace. */
  hostname?: string
  domainname?: string
  /** Root filesystem (needs a new `mnt` namespace). */
  /** Bring up `lo` in a new network namespace (default true, as runc and Docker do). */
  loopback?: boolean
  rootfs?: RootfsOptions
}

/** Options of {@link enter}: the process to start inside another process's namespaces. */
export interface EnterOptions extends ProcessOptions {
  /** Which of the target's namespaces to join; default every type whose id differs from ours. */
  namespaces?: NamespaceType[]
}

/** How the child ended: an exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A running child. */
export interface Child {
  /** The child's pid in our pid namespace. */
  readonly pid: number
  /** Writable end of the child's stdin when it is `'pipe'`. */
  readonly stdin: Writable | null
  /** Readable end of the child's stdout when it is `'pipe'`. */
  readonly stdout: Readable | null
  /** Readable end of the child's stderr when it is `'pipe'`. */
  readonly stderr: Readable | null
  /**
   * Settles once the child has exited and been reaped. Never rejects. A child with a mount
   * namespace of its own has it held until then: its mounts go right after, on a thread-pool
   * thread, instead of delaying the exit (they were only ever visible inside it).
   */
  readonly exited: Promise<ExitStatus>
  /** Sends a signal (default SIGTERM) through the pidfd. False once the child has exited. */
  kill(signal?: NodeJS.Signals | number): boolean
  /** Keep the event loop alive while the child runs (default). */
  ref(): void
  /** Let the event loop exit while the child runs. */
  unref(): void
}
