/**
 * The mount-namespace setup of a root filesystem, as child steps: what runc does between
 * clone and exec for `root`, `mounts`, `maskedPaths` and `readonlyPaths`.
 */
import { statSync } from 'node:fs'
import path from 'node:path'
import { FileType, MountFlag as MS, Op, makedev } from '@ctr/native'
import type { StepList } from './plan-builder.js'
import type { RootfsOptions } from './types.js'

/** runc's (and Docker's) default masked paths. */
export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
  '/sys/devices/virtual/powercap',
]

/** runc's (and Docker's) default read-only paths. */
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']

/** The device nodes every container gets: name, major, minor. */
const DEVICES: [string, number, number][] = [
  ['null', 1, 3], ['zero', 1, 5], ['full', 1, 7], ['random', 1, 8], ['urandom', 1, 9], ['tty', 5, 0],
]

const DEV_LINKS: [string, string][] = [
  ['/proc/self/fd', 'fd'], ['/proc/self/fd/0', 'stdin'], ['/proc/self/fd/1', 'stdout'], ['/proc/self/fd/2', 'stderr'],
  ['pts/ptmx', 'ptmx'],
]

/** Which namespaces the child gets new: some mounts are only allowed with their own namespace. */
export interface RootfsContext {
  userNs: boolean
  pidNs: boolean
  netNs: boolean
  ipcNs: boolean
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory()
  } catch {
    return true // a missing source fails at mount time, with its own error
  }
}

/** mkdir of every directory from `/` down to `target`, in the new root (existing ones are fine). */
function mkdirsIn(list: StepList, target: string): void {
  let p = ''
  for (const part of target.split('/').filter(Boolean)) {
    p = `${p}/${part}`
    list.mkdirIn(p, 0o755)
  }
}

/**
 * Appends the steps that turn `rootfs.path` into the child's `/`. Until pivot_root, the root
 * itself is named by its host path; everything inside it by its path in the container,
 * resolved by the child in the opened root (`RootOpen`, then `MkdirIn`/`MountIn`/…: openat2
 * with RESOLVE_IN_ROOT). A link in the image such as `/etc -> /` thus leads to the
 * container's `/`, never the host's — which the host could not check itself, as the root is
 * often an overlay that only the child mounts.
 */
export function addRootfsSteps(list: StepList, rootfs: RootfsOptions, ctx: RootfsContext): void {
  const root = path.resolve(rootfs.path)
  const NOSUID_NODEV_NOEXEC = MS.NOSUID | MS.NODEV | MS.NOEXEC

  // Device nodes are created with mode 0666; the caller's umask must not narrow them.
  list.add({ op: Op.Umask, n: [0] }, { step: 'umask 0', syscall: 'umask' })
  list.mount(null, '/', null, MS.REC | MS.PRIVATE, null, 'make mount propagation private')
  const fsys = rootfs.filesystem
  if (fsys) {
    // The child has its own cwd (no CLONE_FS), so this changes nothing for the parent; every
    // later step uses absolute paths.
    if (fsys.cwd) list.add({ op: Op.Chdir, s: [fsys.cwd] }, { step: `chdir ${fsys.cwd}`, syscall: 'chdir', path: fsys.cwd })
    list.mount(fsys.source ?? fsys.type, root, fsys.type, fsys.flags ?? 0, fsys.data ?? null, `mount ${fsys.type} on ${root}`)
  }
  // pivot_root needs the new root to be a mount point: a plain directory is bound onto itself;
  // a file system just mounted there already is one.
  if (!fsys) list.mount(root, root, null, MS.BIND | MS.REC, null, `bind ${root} onto itself`)
  list.add({ op: Op.RootOpen, s: [root] }, { step: `open the new root ${root}`, syscall: 'open', path: root })

  list.mkdirIn('/proc', 0o555)
  if (ctx.userNs && !ctx.pidNs) {
    // proc can only be mounted by the owner of the pid namespace: bind the one we see.
    list.mountIn('/proc', '/proc', null, MS.BIND | MS.REC, null, 'bind /proc on /proc')
  } else {
    list.mountIn('proc', '/proc', 'proc', NOSUID_NODEV_NOEXEC, null, 'mount proc on /proc')
  }

  list.mkdirIn('/dev', 0o755)
  list.mountIn('tmpfs', '/dev', 'tmpfs', MS.NOSUID | MS.STRICTATIME, 'mode=755,size=65536k', 'mount tmpfs on /dev')
  for (const [name, major, minor] of DEVICES) {
    const node = `/dev/${name}`
    if (ctx.userNs) {
      // mknod of devices is not allowed in a user namespace: bind the host's nodes instead.
      list.add({ op: Op.MknodIn, s: [node], n: [0o100666, 0] }, { step: `create ${node}`, syscall: 'mknod', path: node })
      list.mountIn(node, node, null, MS.BIND, null, `bind ${node} on ${node}`)
    } else {
      list.add(
        { op: Op.MknodIn, s: [node], n: [FileType.S_IFCHR | 0o666, makedev(major, minor)] },
        { step: `mknod ${node}`, syscall: 'mknod', path: node },
      )
    }
  }
  list.mkdirIn('/dev/pts', 0o755)
  list.mountIn('devpts', '/dev/pts', 'devpts', MS.NOSUID | MS.NOEXEC,
    ctx.userNs ? 'newinstance,ptmxmode=0666,mode=0620' : 'newinstance,ptmxmode=0666,mode=0620,gid=5', 'mount devpts on /dev/pts')
  list.mkdirIn('/dev/shm', 0o1777)
  list.mountIn('shm', '/dev/shm', 'tmpfs', NOSUID_NODEV_NOEXEC, 'mode=1777,size=65536k', 'mount tmpfs on /dev/shm')
  if (ctx.ipcNs || !ctx.userNs) {
    list.mkdirIn('/dev/mqueue', 0o755)
    list.mountIn('mqueue', '/dev/mqueue', 'mqueue', NOSUID_NODEV_NOEXEC, null, 'mount mqueue on /dev/mqueue')
  }
  for (const [target, name] of DEV_LINKS) {
    const link = `/dev/${name}`
    list.add({ op: Op.SymlinkIn, s: [target, link] }, { step: `symlink ${link} -> ${target}`, syscall: 'symlink', path: link })
  }

  list.mkdirIn('/sys', 0o555)
  if (ctx.netNs || !ctx.userNs) {
    list.mountIn('sysfs', '/sys', 'sysfs', NOSUID_NODEV_NOEXEC | MS.RDONLY, null, 'mount sysfs on /sys (read-only)')
  } else {
    // sysfs belongs to the network namespace's owner: bind ours, read-only.
    list.mountIn('/sys', '/sys', null, MS.BIND | MS.REC, null, 'bind /sys on /sys')
    list.add({ op: Op.BindRemountIn, s: [null, '/sys'], n: [MS.RDONLY] }, { step: 'make /sys read-only', syscall: 'mount', path: '/sys' })
  }

  rootfs.mounts?.forEach((m) => {
    const target = path.posix.resolve('/', m.target)
    if (m.type === 'bind') {
      if (isDirectory(m.source)) {
        mkdirsIn(list, target)
      } else {
        // The file is made only where the image has nothing (a file, or a link the mount
        // follows inside the root, will do).
        mkdirsIn(list, path.posix.dirname(target))
        list.add({ op: Op.MknodIn, s: [target], n: [0o100644, 0] }, { step: `create ${target}`, syscall: 'mknod', path: target })
      }
      list.mountIn(m.source, target, null, MS.BIND | MS.REC, null, `bind-mount ${m.source} on ${target}`)
      if (m.readonly) {
        list.add({ op: Op.BindRemountIn, s: [null, target], n: [MS.RDONLY] }, { step: `make ${target} read-only`, syscall: 'mount', path: target })
      }
    } else {
      mkdirsIn(list, target)
      const data = [`mode=${(m.mode ?? 0o755).toString(8)}`]
      if (m.size !== undefined) data.push(`size=${m.size}`)
      list.mountIn('tmpfs', target, 'tmpfs', MS.NOSUID | MS.NODEV | (m.readonly ? MS.RDONLY : 0), data.join(','), `mount tmpfs on ${target}`)
    }
  })

  list.add({ op: Op.PivotRoot, s: [root] }, { step: `pivot_root to ${root}`, syscall: 'pivot_root', path: root })

  for (const p of rootfs.maskedPaths ?? DEFAULT_MASKED_PATHS) {
    list.add({ op: Op.MaskPath, s: [p] }, { step: `mask ${p}`, syscall: 'mount', path: p })
  }
  for (const p of rootfs.readonlyPaths ?? DEFAULT_READONLY_PATHS) {
    list.add({ op: Op.ReadonlyPath, s: [p] }, { step: `make ${p} read-only`, syscall: 'mount', path: p })
  }
  if (rootfs.readonly) {
    list.add({ op: Op.BindRemount, s: [null, '/'], n: [MS.RDONLY] }, { step: 'make / read-only', syscall: 'mount', path: '/' })
  }
}
