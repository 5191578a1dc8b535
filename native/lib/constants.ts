/** Linux constants the plans use (x86_64 and aarch64 share these values). */

/** Namespace flags for clone(2) and setns(2). */
export const CloneFlag = {
  NEWTIME: 0x00000080,
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const

/** mount(2) flags. */
export const MountFlag = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  NOATIME: 1024,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
} as const

/** umount2(2) flags. */
export const UmountFlag = { FORCE: 1, DETACH: 2, EXPIRE: 4, NOFOLLOW: 8 } as const

/** File type bits for mknod(2). */
export const FileType = { S_IFCHR: 0o020000, S_IFBLK: 0o060000, S_IFIFO: 0o010000 } as const

/** makedev(3) for the device numbers mknod takes. */
export function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12)
}
