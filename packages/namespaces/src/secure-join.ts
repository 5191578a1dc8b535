import { lstatSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { InvalidOptionsError } from './errors.js'

/**
 * Resolves `unsafePath` as if `root` were `/`: `..` stops at the root and symlinks are
 * followed inside it, so a link like `/etc -> /` in an image cannot send a mount to the
 * host's `/etc`. Components that do not exist yet are taken literally.
 */
export function secureJoin(root: string, unsafePath: string, field: string): string {
  let rest = unsafePath.split('/').filter((p) => p !== '' && p !== '.')
  let current: string[] = []
  let links = 0
  while (rest.length > 0) {
    const part = rest.shift()!
    if (part === '..') {
      current.pop()
      continue
    }
    const candidate = [...current, part]
    const full = path.join(root, ...candidate)
    let isLink = false
    try {
      isLink = lstatSync(full).isSymbolicLink()
    } catch {
      // Missing: the rest is created later, literally.
    }
    if (!isLink) {
      current = candidate
      continue
    }
    if (++links > 40) throw new InvalidOptionsError(field, `too many symbolic links resolving ${unsafePath}`)
    const target = readlinkSync(full)
    if (target.startsWith('/')) current = []
    rest = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...rest]
  }
  return path.join(root, ...current)
}
