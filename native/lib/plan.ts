/**
 * The spawn plan: everything the child does between clone and exec, as data.
 * The native side validates it and lays it out before clone; the child only reads it.
 */

/** Operations the child interpreter knows. Operands: `s` strings, `n` numbers, `blob` bytes. */
export const Op = {
  /** s: [source|null, target, fstype|null, data|null], n: [flags] */
  Mount: 0,
  /** s: [_, target], n: [flags added to the mount's current flags] (read-only binds) */
  BindRemount: 1,
  /** s: [path], n: [mode]; an existing directory is fine */
  Mkdir: 2,
  /** s: [path], n: [mode, dev] */
  Mknod: 3,
  /** s: [target, linkPath]; an existing link is fine */
  Symlink: 4,
  /** s: [newRoot]; the old root is detached */
  PivotRoot: 5,
  /** s: [path] */
  Chdir: 6,
  /** s: [name] */
  SetHostname: 7,
  /** s: [name] */
  SetDomainname: 8,
  /** n: [resource, soft, hard] with -1 for unlimited (or bigint) */
  SetRlimit: 9,
  /** blob: uint32 gids */
  SetGroups: 10,
  /** n: [gid] */
  SetResgid: 11,
  /** n: [uid] */
  SetResuid: 12,
  /** n: [0|1] */
  KeepCaps: 13,
  /** n: [cap] */
  CapBsetDrop: 14,
  /** blob: 6 × uint32: effective, permitted, inheritable (low word, high word) */
  CapSet: 15,
  /** n: [cap] */
  AmbientRaise: 16,
  NoNewPrivs: 17,
  /** blob: struct sock_filter[], n: [flags] */
  Seccomp: 18,
  Setsid: 19,
  /** n: [fd] */
  SetCtty: 20,
  /** n: [mask] */
  Umask: 21,
  /** s: [target], n: [flags] */
  Umount: 22,
  /** s: [path, content] */
  WriteFile: 23,
  /** s: [path]: /dev/null over a file, an empty read-only tmpfs over a directory; missing is fine */
  MaskPath: 24,
  /** s: [path]: bind it onto itself read-only; missing is fine */
  ReadonlyPath: 25,
  /** s: [interface name]: bring it up (loopback in a new network namespace) */
  LinkUp: 26,
  /**
   * s: [host path of the new root]: opens it (after its mounts) for the in-root steps below.
   * In-root paths are relative to it and resolved with `openat2(RESOLVE_IN_ROOT)`: a symbolic
   * link in the image is followed as if the root were `/`, never to the host's files.
   */
  RootOpen: 27,
  /** s: [in-root path], n: [mode]: an existing directory, or a link to one inside the root, is fine */
  MkdirIn: 28,
  /** s: [in-root path], n: [mode, dev]: for S_IFREG anything already there is fine (a mount target) */
  MknodIn: 29,
  /** s: [target, in-root link path]: an existing entry is fine */
  SymlinkIn: 30,
  /** s: [source|null, in-root target, fstype|null, data|null], n: [flags]: the target's final link is followed inside the root */
  MountIn: 31,
  /** s: [null, in-root target], n: [flags added]: read-only bind remount, as BindRemount */
  BindRemountIn: 32,
} as const
export type Op = (typeof Op)[keyof typeof Op]

/** One step of the plan. */
export interface Step {
  op: Op
  s?: (string | null)[]
  n?: (number | bigint)[]
  blob?: Buffer
}

/** Where a child-side failure happened (the `phase` of a spawn error). */
export const Phase = {
  /** a failure on the parent's side; the error names the syscall and path */
  Parent: -1,
  Setup: 1,
  /** `setns` into `joins[index]` */
  Join: 2,
  /** `dup2` of `fds[index]` */
  Fds: 3,
  /** `steps[index]` */
  Step: 4,
  /** `execve` */
  Exec: 5,
  /** stage 1 cloning stage 2 (two-stage spawns) */
  Clone: 6,
  /** joining the v1 cgroup of `cgroupTasks[index]` */
  Cgroup: 7,
} as const

/** The plan the native spawn takes. */
export interface SpawnPlan {
  /** CLONE_NEW* flags of the process that will exec. */
  cloneFlags: number
  /** Namespaces to join, in order (user first). `fd` is an open namespace file. */
  joins: { fd: number; nstype: number }[]
  /** Required when joining pid or time namespaces: a first stage joins, the second execs. */
  twoStage: boolean
  /**
   * Hold the child's new mount namespace: the result's `mntnsFd` keeps it (and every mount in
   * it) alive after the child exits, so the unmounting happens when that fd is closed instead
   * of inside the child's exit, before its report. Only meaningful with CLONE_NEWNS.
   */
  holdMountNs?: boolean
  /** A cgroup2 directory fd for CLONE_INTO_CGROUP. */
  cgroupFd?: number
  /** That directory's path: its cgroup.procs is written instead where clone3 is missing. */
  cgroupPath?: string
  /** Files the parent writes while the child waits; `{pid}` is replaced by the child's pid. */
  parentWrites: { path: string; data: string }[]
  /**
   * cgroup v1 `tasks` files the child joins itself, first thing, by writing `0` to each (the
   * parent opens them before clone). A thread that moves itself skips the global lock that a
   * pid written to `cgroup.procs` takes, and with it an RCU grace period (milliseconds) on
   * every first attach after a quiet moment. The child is a single thread, so the whole
   * process moves.
   */
  cgroupTasks?: string[]
  /** fds the child gets: `source` (in the parent) becomes `target` (in the child). Everything else is closed. */
  fds: { source: number; target: number }[]
  steps: Step[]
  /** The program: `path` is searched in `search` (a PATH value) when it has no '/'. */
  exec: { path: string; argv: string[]; env: string[]; search: string | null }
  /** Signal the child gets when its parent thread dies (default SIGKILL). */
  pdeathsig?: number
}
