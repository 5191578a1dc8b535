/**
 * Short links: `<root>/l/<short id>` → `../layers/<hex>/fs`.
 *
 * overlay's options travel through mount(2) in one page (4096 bytes with its NUL), so a
 * `lowerdir=` of 128 absolute paths like `/var/lib/ctr/layers/<64 hex>/fs` (~90 bytes each)
 * cannot fit. Mounted from the `l/` directory (see `mountIn`), each lower layer costs its short
 * id and a colon: 13 bytes, which leaves room for about 300 layers (overlay itself stops at 500).
 * Docker's overlay2 driver does the same with random 26-character ids in its own `l/`.
 */
import { mkdirSync, readlinkSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { hexOf, type StorePaths } from '../paths.js'

/** Length of a short id: the first 12 hex digits of the chain id, lengthened on a collision. */
export const SHORT_ID_LENGTH = 12
const STEP = 4

/** What a layer's short link points to (relative, so the store can move). */
export function linkTarget(chainId: string): string {
  return `../layers/${hexOf(chainId)}/fs`
}

/**
 * The short id of a layer, creating `l/<short id>` if it is missing. Idempotent and safe
 * against concurrent callers (symlink creation is atomic; an existing link is read back).
 * When the 12-digit prefix is taken by a link to another layer (or by anything else), the
 * prefix grows 4 digits at a time, up to the full hex, so a name is always found. The result
 * is not stored: it is worked out again at each mount, which also recreates links that were
 * deleted. Synchronous on purpose: a readlink is a microsecond in the kernel, and a 128-layer
 * image would otherwise queue 128 round trips through libuv's thread pool (about 10 ms).
 *
 * @example
 * ```ts
 * ensureShortLink(paths, 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
 * // '9f86d081884c'  (and <root>/l/9f86d081884c → ../layers/9f86…0a08/fs)
 * ```
 */
export function ensureShortLink(paths: StorePaths, chainId: string): string {
  // Links are only ever removed by GC, when they point at nothing: one seen right by this
  // process stays right (a layer removed since shows up as the mount failing with ENOENT).
  const memoKey = `${paths.links}\0${chainId}`
  const known = verified.get(memoKey)
  if (known !== undefined) return known
  const name = findOrCreate(paths, chainId)
  if (verified.size > 100_000) verified.clear()
  verified.set(memoKey, name)
  return name
}

/** Short names this process has created or checked, by links dir and chain id. */
const verified = new Map<string, string>()

function findOrCreate(paths: StorePaths, chainId: string): string {
  const hex = hexOf(chainId)
  const target = linkTarget(chainId)
  let taken = ''
  for (let n = Math.min(SHORT_ID_LENGTH, hex.length); ; n = Math.min(n + STEP, hex.length)) {
    const name = hex.slice(0, n)
    const link = join(paths.links, name)
    const existing = linkOrCreate(paths, link, target)
    if (existing === target) return name
    taken = existing
    if (n === hex.length) break
  }
  throw Object.assign(new Error(`short link \`${join(paths.links, hex)}\` is taken by ${taken}`), { code: 'EEXIST' })
}

/** Reads `link`, creating it first if missing; what it points to, or a description of what is there instead. */
function linkOrCreate(paths: StorePaths, link: string, target: string): string {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return readlinkSync(link)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EINVAL') return 'something that is not a symlink'
      if (code !== 'ENOENT') throw err
    }
    try {
      symlinkSync(target, link)
      return target
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') mkdirSync(paths.links, { recursive: true, mode: 0o700 })
      else if (code !== 'EEXIST') throw err
      // EEXIST: another process created it meanwhile; read it on the next round.
    }
  }
  return readlinkSync(link)
}

/** Forgets every short link this process checked (GC calls it when it removes links). */
export function forgetShortLinks(): void {
  verified.clear()
}
