/**
 * `@ctr/native`: the one native addon of ctr.
 *
 * It holds no policy. It exposes the spawn-plan interpreter ({@link spawnPlan}), an exit
 * watcher for pidfds ({@link ExitWatcher}) and a few syscall-level primitives. Packages above
 * build plans; see `@ctr/namespaces` for the API users meet.
 *
 * @example
 * ```ts
 * import { spawnPlan, ExitWatcher, Op } from '@ctr/native'
 * const { pid, pidfd } = await spawnPlan({
 *   cloneFlags: 0, joins: [], twoStage: false, parentWrites: [],
 *   fds: [0, 1, 2].map((fd) => ({ source: fd, target: fd })),
 *   steps: [{ op: Op.Chdir, s: ['/'] }],
 *   exec: { path: 'true', argv: ['true'], env: [], search: '/usr/bin:/bin' },
 * })
 * new ExitWatcher(pidfd, (code, signal) => console.log(pid, code, signal))
 * ```
 * @packageDocumentation
 */
import { existsSync } from 'node:fs'
import os from 'node:os'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export * from './plan.js'
export * from './constants.js'
import type { SpawnPlan } from './plan.js'
import { packSteps, type PackedSteps } from './pack-steps.js'

/** What the addon exports, as TypeScript sees it. */
interface Addon {
  spawn(plan: Omit<SpawnPlan, 'steps'> & { steps: PackedSteps }): Promise<{ pid: number; pidfd: number; mntnsFd?: number }>
  ExitWatcher: new (pidfd: number, onExit: (code: number | null, signal: number | null) => void) => ExitWatcher
  EventfdWatcher: new (fd: number, onSignal: (count: number) => void) => EventfdWatcher
  pipe(): [number, number]
  close(fd: number): void
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void
  umount2(target: string, flags: number): void
  eventfd(initval: number, flags: number): number
  pidfdOpen(pid: number): number
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number
  mknodat(dirfd: number, name: string, mode: number, dev: number): void
  lsetxattr(path: string, name: string, value: Buffer, flags?: number): void
  lgetxattr(path: string, name: string): Buffer | null
  llistxattr(path: string): string[]
  mountIn(cwd: string, source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void
  removeTree(path: string): Promise<void>
  mkdirs(paths: string[], mode: number): Promise<number[]>
  rmdirs(paths: string[]): Promise<number[]>
  fsBatch(steps: FsBatchStep[]): Promise<{ index: number; errno: number } | null>
  openFlags: OpenFlags
  openpty(): { master: number; slave: number; path: string }
  setWinsize(fd: number, columns: number, rows: number): void
}

/**
 * Watches a child through its pidfd on Node's event loop and reaps it with
 * `waitid(P_PIDFD)` when it exits. It takes ownership of the pidfd. It keeps the event loop
 * alive until the child exits, unless {@link ExitWatcher.unref} is called.
 */
export interface ExitWatcher {
  /** Sends a signal with `pidfd_send_signal` (never to a recycled pid). */
  kill(signal: number): void
  /** Keeps the event loop alive while the child runs (the default). */
  ref(): void
  /** Lets the event loop exit while the child still runs. */
  unref(): void
}

/**
 * Watches an eventfd (for example one registered for cgroup v1 OOM notifications) and calls
 * back with its counter each time it is signalled. It owns the fd and closes it in
 * {@link EventfdWatcher.close}. It does not keep the event loop alive.
 */
export interface EventfdWatcher {
  /** Stops watching and closes the eventfd. Idempotent. */
  close(): void
}

function findAddon(): string {
  const here = path.dirname(fileURLToPath(import.meta.url))
  return path.join(here, '..', 'build', 'Release', 'ctr_native.node')
}

let loaded: Addon | undefined

/** Loads the compiled addon once. Throws an error with code `ERR_CTR_NATIVE_MISSING` if it was not built. */
export function addon(): Addon {
  if (loaded) return loaded
  if (process.platform !== 'linux') {
    throw Object.assign(new Error(`@ctr/native runs on Linux only (this is ${process.platform})`), {
      code: 'ERR_CTR_NATIVE_PLATFORM',
    })
  }
  const file = findAddon()
  try {
    loaded = createRequire(import.meta.url)(file) as Addon
  } catch (err) {
    throw Object.assign(
      new Error(`cannot load the ctr native addon at ${file}: ${(err as Error).message}; build it with \`pnpm --filter @ctr/native build\``),
      { code: 'ERR_CTR_NATIVE_MISSING', cause: err },
    )
  }
  return loaded
}

/**
 * Runs a spawn plan: clones the child with the plan's namespaces, does the parent's part
 * while the child waits, and resolves once the program has exec'd. On failure it rejects
 * with an error whose `code` is the errno name and whose `phase`/`index` locate the failing
 * part of the plan (see {@link Phase}); no process is left behind. A malformed plan rejects
 * with a TypeError naming the field, before anything is cloned. With `holdMountNs`, the
 * result's `mntnsFd` (when the namespace could be opened) is the caller's to close.
 */
export async function spawnPlan(plan: SpawnPlan): Promise<{ pid: number; pidfd: number; mntnsFd?: number }> {
  if (typeof plan !== 'object' || plan === null) throw new TypeError('expected a plan object')
  return addon().spawn({ ...plan, steps: packSteps(plan.steps) })
}

/** Creates an {@link ExitWatcher} for a pidfd (which it then owns). */
export function watchExit(pidfd: number, onExit: (code: number | null, signal: number | null) => void): ExitWatcher {
  return new (addon().ExitWatcher)(pidfd, onExit)
}

/** Creates an {@link EventfdWatcher} for an eventfd (which it then owns). */
export function watchEventfd(fd: number, onSignal: (count: number) => void): EventfdWatcher {
  return new (addon().EventfdWatcher)(fd, onSignal)
}

/** `pipe2(O_CLOEXEC)`: returns `[readEnd, writeEnd]`. */
export const pipe = (): [number, number] => addon().pipe()
/** `close(2)`. */
export const close = (fd: number): void => addon().close(fd)
/** `mount(2)` in the calling process's mount namespace. Errors carry `code`, `syscall`, `path`. */
export const mount = (source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void =>
  addon().mount(source, target, fstype, flags, data)
/** `umount2(2)`. */
export const umount2 = (target: string, flags = 0): void => addon().umount2(target, flags)
/** `eventfd(2)` with `EFD_CLOEXEC` added. */
export const eventfd = (initval = 0, flags = 0): number => addon().eventfd(initval, flags)
/** `pidfd_open(2)`. */
export const pidfdOpen = (pid: number): number => addon().pidfdOpen(pid)

/** open(2) flags as this architecture defines them (they differ between x86_64 and aarch64). */
export interface OpenFlags {
  O_RDONLY: number
  O_WRONLY: number
  O_RDWR: number
  O_CREAT: number
  O_EXCL: number
  O_TRUNC: number
  O_DIRECTORY: number
  O_NOFOLLOW: number
  O_PATH: number
  O_CLOEXEC: number
}

/** The open(2) flags {@link openat2} takes, with this architecture's values. */
export const OpenFlag: Readonly<OpenFlags> = Object.freeze({ ...addon().openFlags })

/** `openat2(2)` resolve flags. */
export const ResolveFlag = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10, CACHED: 0x20 } as const

/** `AT_FDCWD`: a dirfd meaning "the current directory". */
export const AT_FDCWD = -100

/**
 * `openat2(2)`: opens `path` relative to `dirfd` under the `resolve` rules — with
 * `ResolveFlag.IN_ROOT` every symlink and `..` is resolved as if `dirfd` were `/`, so no name
 * can reach outside it. `O_CLOEXEC` is always added. Returns the fd; errors carry `code`.
 *
 * @example
 * ```ts
 * const root = openat2(AT_FDCWD, '/var/lib/ctr/layers/x/fs', OpenFlag.O_PATH | OpenFlag.O_DIRECTORY, 0, 0)
 * const dir = openat2(root, 'usr/bin', OpenFlag.O_PATH | OpenFlag.O_DIRECTORY, 0, ResolveFlag.IN_ROOT)
 * ```
 */
export const openat2 = (dirfd: number, path: string, flags: number, mode: number, resolve: number): number =>
  addon().openat2(dirfd, path, flags, mode, resolve)
/** `mknodat(2)`: `mode` includes the file type ({@link FileType}); `dev` from {@link makedev}. */
export const mknodat = (dirfd: number, name: string, mode: number, dev: number): void => addon().mknodat(dirfd, name, mode, dev)
/** `lsetxattr(2)`: sets an extended attribute without following a final symlink. */
export const lsetxattr = (path: string, name: string, value: Buffer, flags = 0): void => addon().lsetxattr(path, name, value, flags)
/** `lgetxattr(2)`: the attribute's value, or `null` when it is not set. */
export const lgetxattr = (path: string, name: string): Buffer | null => addon().lgetxattr(path, name)
/** `llistxattr(2)`: the names of a file's extended attributes. */
export const llistxattr = (path: string): string[] => addon().llistxattr(path)
/**
 * `mount(2)` with relative paths (overlay's `lowerdir=l/a:l/b`) resolved against `cwd`. The
 * mount runs on a helper thread with its own working directory, so the process's cwd never
 * changes. Errors carry `code`, `syscall` and `path`.
 */
export const mountIn = (cwd: string, source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void =>
  addon().mountIn(cwd, source, target, fstype, flags, data)

/**
 * Opens a pseudo-terminal pair (both ends close-on-exec). Give `slave` to the child as its
 * stdio and controlling terminal; read and write `master` in the parent.
 *
 * @example
 * ```ts
 * const pty = openpty()
 * const child = await spawn({ argv: ['sh'], stdio: [pty.slave, pty.slave, pty.slave], controllingTerminal: 0 })
 * close(pty.slave)
 * ```
 */
/**
 * `rm -rf path` as one job on the thread pool (not several trips per entry, as `fs.rm`). It
 * never follows a symbolic link and never descends into another mount — a bind mount of the
 * same file system included (told apart by statx's mount id): it stops with EBUSY naming the
 * mount point. A missing path is fine. Rejects with a Node-style error (`code`, `syscall`,
 * `path`); ENOSYS (kernel before 5.8) and ELOOP (deeper than 200 levels) mean "use another
 * walker".
 *
 * @example
 * ```ts
 * await removeTree('/var/lib/ctr/snapshots/.tmp-rm-c1')
 * ```
 */
export const removeTree = (path: string): Promise<void> => addon().removeTree(path)

/** errno numbers to names; the first name wins where Node has two (EAGAIN, not EWOULDBLOCK). */
const ERRNO_NAMES = new Map<number, string>()
for (const [name, n] of Object.entries(os.constants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name)

/**
 * The errno name for a number, as the `code` of Node's errors: what {@link mkdirs},
 * {@link rmdirs} and {@link fsBatch} report is a number.
 *
 * @example
 * ```ts
 * errnoName(2) // 'ENOENT'; a number Node does not name: 'E<n>'
 * ```
 */
export const errnoName = (errno: number): string => ERRNO_NAMES.get(errno) ?? `E${errno}`

/**
 * `mkdir(2)` of each path, in order, as one job on the thread pool: for many directories on an
 * in-memory file system (a container's cgroup in every v1 hierarchy), where a promise round
 * trip per directory costs more than the directory. Resolves with one errno per path, 0 where
 * it was made; it never rejects for a path's failure.
 *
 * @example
 * ```ts
 * const errs = await mkdirs(['/sys/fs/cgroup/pids/ctr/c1', '/sys/fs/cgroup/memory/ctr/c1'], 0o755)
 * // [0, 0], or e.g. [0, 17] (EEXIST) for the second
 * ```
 */
export const mkdirs = (paths: string[], mode: number): Promise<number[]> => addon().mkdirs(paths, mode)

/** `rmdir(2)` of each path, in order, as one job on the thread pool; one errno per path (0: removed). See {@link mkdirs}. */
export const rmdirs = (paths: string[]): Promise<number[]> => addon().rmdirs(paths)

/** The operations of {@link fsBatch}. */
export const FsBatchOp = { Mkdir: 0, Lchown: 1, Chmod: 2, WriteNew: 3, Rename: 4, MkdirExistOk: 5 } as const

/**
 * One step of {@link fsBatch}: `[Mkdir | MkdirExistOk | Chmod, path, mode]`,
 * `[Lchown, path, uid, gid]`, `[WriteNew, path, mode, 0, data]` (O_CREAT|O_EXCL, no following
 * a link) or `[Rename, path, 0, 0, newPath]`. Paths are absolute.
 */
export type FsBatchStep =
  | [typeof FsBatchOp.Mkdir | typeof FsBatchOp.MkdirExistOk | typeof FsBatchOp.Chmod, string, number]
  | [typeof FsBatchOp.Lchown, string, number, number]
  | [typeof FsBatchOp.WriteNew, string, number, 0, string | Buffer]
  | [typeof FsBatchOp.Rename, string, 0, 0, string]

/**
 * Runs file-system calls in order as one job on the thread pool and stops at the first that
 * fails: resolves with `null` when all succeeded, else with the failed step's index and errno
 * (the steps before it are done; undoing them is the caller's business). For a short fixed
 * sequence — a snapshot's directories, their owner and mode, its record and the rename that
 * publishes it — where a promise round trip per call costs more than the calls.
 *
 * @example
 * ```ts
 * const failed = await fsBatch([
 *   [FsBatchOp.Mkdir, '/var/lib/ctr/snapshots/.tmp-c1', 0o700],
 *   [FsBatchOp.WriteNew, '/var/lib/ctr/snapshots/.tmp-c1/snapshot.json', 0o644, 0, '{}\n'],
 *   [FsBatchOp.Rename, '/var/lib/ctr/snapshots/.tmp-c1', 0, 0, '/var/lib/ctr/snapshots/c1'],
 * ])
 * if (failed) console.error(`step ${failed.index}: errno ${failed.errno}`)
 * ```
 */
export const fsBatch = (steps: FsBatchStep[]): Promise<{ index: number; errno: number } | null> => addon().fsBatch(steps)

export const openpty = (): { master: number; slave: number; path: string } => addon().openpty()
/** Sets a terminal's size (TIOCSWINSZ); the foreground process group gets SIGWINCH. */
export const setWinsize = (fd: number, columns: number, rows: number): void => addon().setWinsize(fd, columns, rows)

/**
 * The path of `ctr-init`, the static PID 1 built with the addon (reaps zombies, forwards
 * signals; bind-mount it into a container and run `ctr-init -- cmd…`). Throws
 * `ERR_CTR_NATIVE_MISSING` when it was not built.
 */
export function initBinaryPath(): string {
  const file = path.join(path.dirname(findAddon()), 'ctr-init')
  if (!existsSync(file)) {
    throw Object.assign(new Error(`ctr-init is missing at ${file}; build it with \`pnpm --filter @ctr/native build\``), { code: 'ERR_CTR_NATIVE_MISSING' })
  }
  return file
}

// ---- netlink ------------------------------------------------------------------------------

/** The netlink primitives of the addon (kept apart from {@link Addon} so this section stays self-contained). */
interface NetlinkAddon {
  netlinkOpen(protocol: number, netnsFd: number): number
  netlinkRequest(fd: number, request: Buffer): Promise<Buffer[]>
  netlinkOpenNewNetns(protocol: number): Promise<{ fd: number; netnsFd: number }>
  netlinkOpenNewNetnsSync(protocol: number): { fd: number; netnsFd: number }
  netlinkRequestSync(fd: number, request: Buffer): Buffer[]
}
const netlinkAddon = (): NetlinkAddon => addon() as unknown as NetlinkAddon

/**
 * Opens a netlink socket (`AF_NETLINK`, `SOCK_RAW | SOCK_CLOEXEC`, `protocol`, e.g. 0 for
 * `NETLINK_ROUTE`) and binds it. With `netnsFd` ≥ 0 (an fd of a network namespace, such as
 * `/proc/<pid>/ns/net` or `/run/netns/<name>`), the socket is created inside that namespace
 * by a short-lived thread; the caller's own threads never change namespace. Extended acks
 * and capped acks are enabled; receives time out after 5 s. Close it with {@link close}.
 */
export const netlinkOpen = (protocol: number, netnsFd = -1): number => netlinkAddon().netlinkOpen(protocol, netnsFd)

/**
 * Makes a new network namespace (only `lo`, down) with no process in it and opens a netlink
 * socket inside: resolves with the socket (`fd`) and an fd of the namespace (`netnsFd`, for
 * `setns` or `IFLA_NET_NS_FD`). A short-lived thread unshares `CLONE_NEWNET`; no thread of
 * the caller changes namespace. The namespace lives while either fd is open or a process is
 * in it. Close both with {@link close}.
 */
export const netlinkOpenNewNetns = (protocol: number): Promise<{ fd: number; netnsFd: number }> => netlinkAddon().netlinkOpenNewNetns(protocol)

/** {@link netlinkOpenNewNetns}, waiting on the calling thread (no worker-thread round trip). */
export const netlinkOpenNewNetnsSync = (protocol: number): { fd: number; netnsFd: number } => netlinkAddon().netlinkOpenNewNetnsSync(protocol)

/**
 * Sends one netlink request (a complete message: header with `nlmsg_len`, flags and `nlmsg_seq`
 * set by the caller), or a batch of them (aligned messages back to back, distinct sequence
 * numbers: one datagram, which the kernel runs in order), and resolves with every reply
 * carrying those sequence numbers, each message's up to `NLMSG_DONE` (dumps) or `NLMSG_ERROR`
 * (acks and failures, which the caller parses). Runs on a worker thread. One request at a time per socket. Socket errors reject with `code`/`errno`/`syscall`
 * (`EAGAIN` when the kernel did not answer within 5 s).
 */
export const netlinkRequest = (fd: number, request: Buffer): Promise<Buffer[]> => netlinkAddon().netlinkRequest(fd, request)

/**
 * {@link netlinkRequest} on the calling thread: rtnetlink runs a request in the sender's
 * context, so for short requests the kernel's work is the whole cost and a worker-thread round
 * trip would be most of the latency. The thread waits as long as the kernel takes (the RTNL
 * lock may be held by others); sockets time out after 5 s.
 */
export const netlinkRequestSync = (fd: number, request: Buffer): Buffer[] => netlinkAddon().netlinkRequestSync(fd, request)
