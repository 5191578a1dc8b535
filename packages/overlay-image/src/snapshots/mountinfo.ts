/**
 * Reading `/proc/self/mountinfo`, and unmounting everything at or below a directory.
 *
 * Mount state is never recorded on disk: a snapshot is mounted when the kernel says so. That is
 * what makes `remove` work after a crash — a mount left by a process killed with SIGKILL is
 * still listed here (it lives as long as its mount namespace), and a mount that went away with
 * a reboot or a namespace is simply not listed.
 */
import { readFile } from 'node:fs/promises'
import { UmountFlag, umount2 } from '@ctr/native'
import { StoreError } from '../errors.js'

/** One line of `/proc/self/mountinfo` (proc(5)), with the octal escapes of paths decoded. */
export interface MountEntry {
  id: number
  parent: number
  /** Where it is mounted, as seen from this process's root. */
  mountPoint: string
  fstype: string
  source: string
  /** Per-mount options (`rw,relatime`). */
  options: string
  /** Per-superblock options (overlay's `lowerdir=…,upperdir=…`). */
  superOptions: string
}

/** `\040` → space, `\011` → tab, `\012` → newline, `\134` → backslash. */
function unescape(s: string): string {
  return s.includes('\\') ? s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) : s
}

/**
 * Parses the text of a mountinfo file. Lines that do not parse are skipped.
 *
 * @example
 * ```ts
 * parseMountinfo('66 43 0:39 / /tmp/a\\040b rw - overlay overlay rw,lowerdir=x:y\n')[0].mountPoint // '/tmp/a b'
 * ```
 */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (dash < 0 || f.length < dash + 4) continue
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescape(f[4]!),
      options: f[5]!,
      fstype: f[dash + 1]!,
      source: unescape(f[dash + 2]!),
      superOptions: f[dash + 3]!,
    })
  }
  return out
}

/**
 * The mounts of the calling process's mount namespace, in mount order (later mounts last).
 *
 * @example
 * ```ts
 * const overlays = (await readMountinfo()).filter((m) => m.fstype === 'overlay')
 * ```
 */
export async function readMountinfo(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'))
}

/**
 * Mounts at `dir` or below it. `dir` must be a real path (no symlinks), as the kernel shows it.
 *
 * @example
 * ```ts
 * mountsUnder(await readMountinfo(), await realpath('/var/lib/ctr/snapshots/c1')) // [] once removed
 * ```
 */
export function mountsUnder(entries: MountEntry[], dir: string): MountEntry[] {
  const prefix = dir.endsWith('/') ? dir : dir + '/'
  return entries.filter((e) => e.mountPoint === dir || e.mountPoint.startsWith(prefix))
}

/**
 * Unmounts every mount at or below `dir` (a real path), deepest and most recent first. A mount
 * that is busy is detached (`MNT_DETACH`): it disappears from the tree at once and the kernel
 * frees it when its last user goes. Throws `ERR_STORE_MOUNT` if something stays mounted.
 *
 * @example
 * ```ts
 * await unmountAllUnder(await realpath(snap.rootfs), 'unmount snapshot c1')
 * ```
 */
export async function unmountAllUnder(dir: string, what: string): Promise<void> {
  // Each round unmounts one mount; a mount that the kernel refuses to unmount twice (EINVAL for
  // a mount locked by a user namespace, say) ends it, and so does the bound, which guards
  // against mounts that keep coming back (another process mounting there at the same time).
  const tried = new Set<number>()
  for (let round = 0; round < 1000; round++) {
    const under = mountsUnder(await readMountinfo(), dir)
    if (under.length === 0) return
    // The deepest mount point first; among mounts stacked on one point, the last one (on top).
    let pick = under[0]!
    for (const e of under) {
      if (e.mountPoint.length >= pick.mountPoint.length) pick = e
    }
    if (tried.has(pick.id)) {
      throw new StoreError('ERR_STORE_MOUNT', `${what}: \`${pick.mountPoint}\` (${pick.fstype}) stays mounted`, { path: pick.mountPoint })
    }
    tried.add(pick.id)
    try {
      umount2(pick.mountPoint, UmountFlag.NOFOLLOW)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EBUSY') {
        try {
          umount2(pick.mountPoint, UmountFlag.DETACH | UmountFlag.NOFOLLOW)
        } catch (err2) {
          const code2 = (err2 as NodeJS.ErrnoException).code
          if (code2 !== 'EINVAL' && code2 !== 'ENOENT') {
            throw new StoreError('ERR_STORE_MOUNT', `${what}: unmount \`${pick.mountPoint}\`: ${code2 ?? String(err2)}`, { path: pick.mountPoint, cause: err2 })
          }
        }
      } else if (code !== 'EINVAL' && code !== 'ENOENT') {
        // EINVAL/ENOENT: it went away meanwhile (another process unmounted it).
        throw new StoreError('ERR_STORE_MOUNT', `${what}: unmount \`${pick.mountPoint}\`: ${code ?? String(err)}`, { path: pick.mountPoint, cause: err })
      }
    }
  }
  throw new StoreError('ERR_STORE_MOUNT', `${what}: mounts keep appearing under \`${dir}\``, { path: dir })
}
