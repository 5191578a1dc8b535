/**
 * The mount-namespace setup of a root filesystem, as child steps: what runc does between
 * clone and exec for `root`, `mounts`, `maskedPaths` and `readonlyPaths`.
 */
import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { FileType, MountFlag as MS, Op, makedev } from '@ctr/native'
import type { StepList } from './plan-builder.js'
import { secureJoin } from './secure-join.js'
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

/** mkdir of every missing directory from `root` down to `target` (all inside root). */
function mkdirs(list: StepList, root: string, target: string): void {
  const rel = path.relative(root, target)
  let p = root
  for (const part of rel.split('/').filter(Boolean)) {
    p = path.join(p, part)
    list.mkdir(p, 0o755, '/' + path.relative(root, p))
  }
}

/**
 * Appends the steps that turn `rootfs.path` into the child's `/`. Host paths are used up to
 * pivot_root, container paths after it.
 */
export function addRootfsSteps(list: StepList, rootfs: RootfsOptions, ctx: RootfsContext): void {
  const root = path.resolve(rootfs.path)
  const inRoot = (p: string) => path.join(root, p)
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
  list.mount(root, root, null, MS.BIND | MS.REC, null, `bind ${root} onto itself`)

  list.mkdir(inRoot('proc'), 0o555, '/proc')
  if (ctx.userNs && !ctx.pidNs) {
    // proc can only be mounted by the owner of the pid namespace: bind the one we see.
    list.mount('/proc', inRoot('proc'), null, MS.BIND | MS.REC, null, 'bind /proc on /proc')
  } else {
    list.mount('proc', inRoot('proc'), 'proc', NOSUID_NODEV_NOEXEC, null, 'mount proc on /proc')
  }

  const dev = inRoot('dev')
  list.mkdir(dev, 0o755, '/dev')
  list.mount('tmpfs', dev, 'tmpfs', MS.NOSUID | MS.STRICTATIME, 'mode=755,size=65536k', 'mount tmpfs on /dev')
  for (const [name, major, minor] of DEVICES) {
    const node = path.join(dev, name)
    if (ctx.userNs) {
      // mknod of devices is not allowed in a user namespace: bind the host's nodes instead.
      list.add({ op: Op.Mknod, s: [node], n: [0o100666, 0] }, { step: `create /dev/${name}`, syscall: 'mknod', path: node })
      list.mount(`/dev/${name}`, node, null, MS.BIND, null, `bind /dev/${name} on /dev/${name}`)
    } else {
      list.add(
        { op: Op.Mknod, s: [node], n: [FileType.S_IFCHR | 0o666, makedev(major, minor)] },
        { step: `mknod /dev/${name}`, syscall: 'mknod', path: node },
      )
    }
  }
  list.mkdir(path.join(dev, 'pts'), 0o755, '/dev/pts')
  list.mount('devpts', path.join(dev, 'pts'), 'devpts', MS.NOSUID | MS.NOEXEC,
    ctx.userNs ? 'newinstance,ptmxmode=0666,mode=0620' : 'newinstance,ptmxmode=0666,mode=0620,gid=5', 'mount devpts on /dev/pts')
  list.mkdir(path.join(dev, 'shm'), 0o1777, '/dev/shm')
  list.mount('shm', path.join(dev, 'shm'), 'tmpfs', NOSUID_NODEV_NOEXEC, 'mode=1777,size=65536k', 'mount tmpfs on /dev/shm')
  if (ctx.ipcNs || !ctx.userNs) {
    list.mkdir(path.join(dev, 'mqueue'), 0o755, '/dev/mqueue')
    list.mount('mqueue', path.join(dev, 'mqueue'), 'mqueue', NOSUID_NODEV_NOEXEC, null, 'mount mqueue on /dev/mqueue')
  }
  for (const [target, name] of DEV_LINKS) {
    const link = path.join(dev, name)
    list.add({ op: Op.Symlink, s: [target, link] }, { step: `symlink /dev/${name} -> ${target}`, syscall: 'symlink', path: link })
  }

  list.mkdir(inRoot('sys'), 0o555, '/sys')
  if (ctx.netNs || !ctx.userNs) {
    list.mount('sysfs', inRoot('sys'), 'sysfs', NOSUID_NODEV_NOEXEC | MS.RDONLY, null, 'mount sysfs on /sys (read-only)')
  } else {
    // sysfs belongs to the network namespace's owner: bind ours, read-only.
    list.mount('/sys', inRoot('sys'), null, MS.BIND | MS.REC, null, 'bind /sys on /sys')
    list.add({ op: Op.BindRemount, s: [null, inRoot('sys')], n: [MS.RDONLY] }, { step: 'make /sys read-only', syscall: 'mount', path: '/sys' })
  }

  rootfs.mounts?.forEach((m, i) => {
    const target = secureJoin(root, m.target, `rootfs.mounts.${i}.target`)
    if (m.type === 'bind') {
      if (isDirectory(m.source)) mkdirs(list, root, target)
      else if (!existsSync(target)) {
        mkdirs(list, root, path.dirname(target))
        list.add({ op: Op.Mknod, s: [target], n: [0o100644, 0] }, { step: `create ${m.target}`, syscall: 'mknod', path: target })
      }
      list.mount(m.source, target, null, MS.BIND | MS.REC, null, `bind-mount ${m.source} on ${m.target}`)
      if (m.readonly) {
        list.add({ op: Op.BindRemount, s: [null, target], n: [MS.RDONLY] }, { step: `make ${m.target} read-only`, syscall: 'mount', path: m.target })
      }
    } else {
      mkdirs(list, root, target)
      const data = [`mode=${(m.mode ?? 0o755).toString(8)}`]
      if (m.size !== undefined) data.push(`size=${m.size}`)
      list.mount('tmpfs', target, 'tmpfs', MS.NOSUID | MS.NODEV | (m.readonly ? MS.RDONLY : 0), data.join(','), `mount tmpfs on ${m.target}`)
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
