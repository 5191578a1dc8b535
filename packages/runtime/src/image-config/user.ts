/**
 * Docker's `User` (`--user`) resolved through the image's own /etc/passwd and /etc/group, as
 * runc's `GetExecUser` does. The root filesystem is untrusted: its files are found with a
 * secure join (symlinks stay inside the root), opened without following a final symlink,
 * must be regular files, and are read up to a size cap.
 */
import { constants, promises as fs } from 'node:fs'
import { secureJoin } from '@ctr/namespaces'
import { invalidOption, RuntimeError } from '../errors.js'

/** The identity a container process runs as. */
export interface ResolvedUser {
  uid: number
  gid: number
  /** Supplementary groups: the user's memberships in /etc/group (when no group was named), then `groupAdd`. */
  additionalGids: number[]
  /** The home directory from /etc/passwd, or `/`. */
  home: string
}

/**
 * Reads a file of the image by its absolute path in the image (`/etc/passwd`): the text, or
 * null when it does not exist. {@link readRootfsFile} over a mounted root is one.
 */
export type ImageFileReader = (file: string) => Promise<string | null>

export interface ResolveUserOptions {
  /** Extra groups, as `--group-add`: names (looked up in /etc/group) or numeric gids. */
  groupAdd?: readonly string[]
  /** Largest /etc/passwd or /etc/group read, in bytes (default 4 MiB). */
  maxFileSize?: number
  /** The option name in errors (default `user`). */
  field?: string
}

interface PasswdEntry {
  name: string
  uid: number
  gid: number
  home: string
}
interface GroupEntry {
  name: string
  gid: number
  members: string[]
}

/** runc's id range. */
const MAX_ID = 2 ** 31 - 1
const DEFAULT_MAX_FILE = 4 * 2 ** 20

function parseId(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d+$/.test(s)) return undefined
  const n = Number(s)
  return n <= MAX_ID ? n : undefined
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'))
}

/** Parses /etc/passwd; malformed lines (no numeric uid or gid) are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = []
  for (const f of lines(text)) {
    const uid = parseId(f[2])
    const gid = parseId(f[3])
    if (uid === undefined || gid === undefined) continue
    out.push({ name: f[0] ?? '', uid, gid, home: f[5] ?? '' })
  }
  return out
}

/** Parses /etc/group; malformed lines (no numeric gid) are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = []
  for (const f of lines(text)) {
    const gid = parseId(f[2])
    if (gid === undefined) continue
    out.push({ name: f[0] ?? '', gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) })
  }
  return out
}

/**
 * Reads a file of an untrusted root filesystem: resolved inside `rootfs`, not following a
 * final symlink, a regular file, at most `max` bytes. Returns null when it does not exist.
 */
export async function readRootfsFile(rootfs: string, file: string, max: number = DEFAULT_MAX_FILE): Promise<string | null> {
  let full: string
  try {
    full = secureJoin(rootfs, file, 'path')
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_IMAGE_FILE', `cannot resolve ${file} in the image: ${(err as Error).message}`, { path: file, cause: err })
  }
  let handle: fs.FileHandle
  try {
    // O_NONBLOCK: a FIFO planted in the image must not block us; O_NOFOLLOW: secureJoin resolved links already.
    handle = await fs.open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return null
    throw new RuntimeError('ERR_RUNTIME_IMAGE_FILE', `cannot open ${file} in the image: ${(err as Error).message}`, { path: full, cause: err })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new RuntimeError('ERR_RUNTIME_IMAGE_FILE', `${file} in the image is not a regular file`, { path: full })
    if (st.size > max) throw new RuntimeError('ERR_RUNTIME_IMAGE_FILE', `${file} in the image is larger than ${max} bytes`, { path: full })
    // Read at most max + 1 bytes whatever the size claimed, in case the file grows.
    const buf = Buffer.alloc(Math.min(max + 1, Math.max(st.size, 0) + 1))
    let total = 0
    for (;;) {
      const { bytesRead } = await handle.read(buf, total, buf.length - total, total)
      if (bytesRead === 0) break
      total += bytesRead
      if (total === buf.length) {
        if (total > max) throw new RuntimeError('ERR_RUNTIME_IMAGE_FILE', `${file} in the image is larger than ${max} bytes`, { path: full })
        break
      }
    }
    return buf.subarray(0, total).toString('utf8')
  } finally {
    await handle.close()
  }
}

/**
 * Resolves a Docker `User` string — `''`, `name`, `uid`, `name:group`, `uid:gid`,
 * `name:gid`, `uid:group` — through `<rootfs>/etc/passwd` and `<rootfs>/etc/group`, with
 * runc's rules:
 *
 * - empty: uid 0 (looked up in passwd for its gid and home);
 * - a numeric uid is always a uid; it need not be in passwd (gid then 0, home `/`), so a
 *   missing passwd file is fine; a name must be found (`ERR_RUNTIME_USER_NOT_FOUND`);
 * - an explicit group replaces the user's gid: a numeric gid need not exist, a name must
 *   (`ERR_RUNTIME_GROUP_NOT_FOUND`); without one, the user's memberships in /etc/group
 *   become the supplementary groups;
 * - `groupAdd` (Docker's `--group-add`) appends further groups.
 *
 * @example
 * ```ts
 * import { resolveUser } from '@ctr/runtime'
 * const u = await resolveUser('/var/lib/ctr/snapshots/abc/merged', 'nobody')
 * // { uid: 65534, gid: 65534, additionalGids: [], home: '/nonexistent' }
 * await spawn({ argv: ['id'], user: { uid: u.uid, gid: u.gid, groups: u.additionalGids }, env: { HOME: u.home } })
 * ```
 */
export async function resolveUser(
  rootfs: string | ImageFileReader,
  user: string | undefined,
  options: ResolveUserOptions = {},
): Promise<ResolvedUser> {
  const field = options.field ?? 'user'
  const spec = (user ?? '').trim()
  if (spec.includes('\0')) throw invalidOption(field, 'must not contain NUL bytes')
  const colon = spec.indexOf(':')
  const userArg = colon < 0 ? spec : spec.slice(0, colon)
  const groupArg = colon < 0 ? '' : spec.slice(colon + 1)
  if (colon >= 0 && userArg === '') throw invalidOption(field, `"${spec}" names a group but no user`)
  if (groupArg.includes(':')) throw invalidOption(field, `"${spec}" is not user[:group]`)
  const uidArg = /^\d+$/.test(userArg) ? parseId(userArg) : undefined
  const gidArg = /^\d+$/.test(groupArg) ? parseId(groupArg) : undefined
  if (/^\d+$/.test(userArg) && uidArg === undefined) throw invalidOption(field, `uid ${userArg} is out of range (0 to ${MAX_ID})`)
  if (/^\d+$/.test(groupArg) && gidArg === undefined) throw invalidOption(field, `gid ${groupArg} is out of range (0 to ${MAX_ID})`)

  const max = options.maxFileSize ?? DEFAULT_MAX_FILE
  const read: ImageFileReader = typeof rootfs === 'string' ? (file) => readRootfsFile(rootfs, file, max) : rootfs
  const passwdText = await read('/etc/passwd')
  const passwd = passwdText === null ? [] : parsePasswd(passwdText)

  const result: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/' }
  let matched: PasswdEntry | undefined
  if (userArg === '') matched = passwd.find((p) => p.uid === 0)
  else if (uidArg !== undefined) matched = passwd.find((p) => p.uid === uidArg)
  else matched = passwd.find((p) => p.name === userArg)

  if (matched) {
    result.uid = matched.uid
    result.gid = matched.gid
    result.home = matched.home === '' ? '/' : matched.home
  } else if (uidArg !== undefined) {
    result.uid = uidArg
  } else if (userArg !== '') {
    throw new RuntimeError(
      'ERR_RUNTIME_USER_NOT_FOUND',
      passwdText === null
        ? `unable to find user ${userArg}: the image has no /etc/passwd`
        : `unable to find user ${userArg}: no matching entry in the image's /etc/passwd`,
      { field },
    )
  }

  const needGroups = groupArg !== '' || matched !== undefined || (options.groupAdd?.length ?? 0) > 0
  const groupText = needGroups ? await read('/etc/group') : null
  const groups = groupText === null ? [] : parseGroup(groupText)

  if (groupArg !== '') {
    const g = gidArg !== undefined ? groups.find((e) => e.gid === gidArg) : groups.find((e) => e.name === groupArg)
    if (g) result.gid = g.gid
    else if (gidArg !== undefined) result.gid = gidArg
    else {
      throw new RuntimeError(
        'ERR_RUNTIME_GROUP_NOT_FOUND',
        groupText === null
          ? `unable to find group ${groupArg}: the image has no /etc/group`
          : `unable to find group ${groupArg}: no matching entry in the image's /etc/group`,
        { field },
      )
    }
  } else if (matched !== undefined) {
    // Supplementary groups only in the implicit form, as runc.
    for (const g of groups) if (g.members.includes(matched.name) && !result.additionalGids.includes(g.gid)) result.additionalGids.push(g.gid)
  }

  ;(options.groupAdd ?? []).forEach((raw, i) => {
    const name = String(raw).trim()
    const numeric = /^\d+$/.test(name) ? parseId(name) : undefined
    let gid: number | undefined
    if (/^\d+$/.test(name)) {
      if (numeric === undefined) throw invalidOption(`groupAdd.${i}`, `gid ${name} is out of range (0 to ${MAX_ID})`)
      gid = numeric
    } else {
      gid = groups.find((g) => g.name === name)?.gid
      if (gid === undefined) {
        throw new RuntimeError('ERR_RUNTIME_GROUP_NOT_FOUND', `unable to find group ${name} in the image's /etc/group`, { field: `groupAdd.${i}` })
      }
    }
    if (!result.additionalGids.includes(gid)) result.additionalGids.push(gid)
  })
  return result
}
