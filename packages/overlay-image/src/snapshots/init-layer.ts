/**
 * Init layers: the mount points a container runtime needs in every container of an image
 * (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, `/proc`, …), made once per image as a
 * read-only layer on top of the image's own, as Docker's `-init` layer is.
 *
 * Without it each container creates the ones its image lacks inside its own upper directory
 * — an mkdir of the parent (a copy-up) and a file per mount point, allocated at start and
 * freed at removal — which costs inodes, and copy-ups, at every start. An init layer holds only
 * what the image lacks; its directories take the image's attributes, so the merged view looks
 * exactly as if the container had made them itself.
 *
 * Layout: `<root>/init/<key>/`, where `key` is a hash of the layers and the mount points; built
 * in `<root>/init/.tmp-*` and published by one rename, never changed afterwards.
 */
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, lstatSync, mkdirSync, renameSync, writeFileSync, type Stats } from 'node:fs'
import { join, posix } from 'node:path'
import { lgetxattr, removeTree } from '@ctr/native'
import { ioError } from '../errors.js'
import type { StorePaths } from '../paths.js'
import { tmpName } from './record.js'

/** A mount point a container of the image will bind or mount something on. */
export interface MountTarget {
  /** Absolute path inside the container, without `.` or `..` components. */
  path: string
  type: 'file' | 'directory'
  /** Permission bits of a directory or file made for it (default 0755 for a directory, 0644 for a file). */
  mode?: number
}

/** Images (store root and key) found to lack none of their targets, in this process. */
const COMPLETE_IMAGES = new Set<string>()

/** What a path is in the image's merged view. */
type Found = { kind: 'missing' } | { kind: 'present'; st: Stats } | { kind: 'blocked' }

const WHITEOUT_RDEV = 0

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === WHITEOUT_RDEV
}

function isOpaque(dir: string): boolean {
  const v = lgetxattr(dir, 'trusted.overlay.opaque')
  return v !== null && v.toString() === 'y'
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p)
  } catch {
    return undefined
  }
}

/**
 * Looks `parts` up in layers listed top first, as overlay does: the topmost layer that has
 * the path decides; a whiteout hides it and everything below; an opaque directory on the way
 * hides what the layers below have under it.
 */
function lookup(layers: string[], parts: string[]): Found {
  for (const layer of layers) {
    let cur = layer
    let hiddenBelow = false
    for (let i = 0; i < parts.length; i++) {
      cur = join(cur, parts[i]!)
      const st = lstatOrUndefined(cur)
      if (!st) break // not in this layer: the layers below may have it (unless hidden)
      if (isWhiteout(st)) return { kind: 'missing' }
      if (i === parts.length - 1) return { kind: 'present', st }
      // Something else where a directory should be: the container would see the same thing;
      // leave it to the runtime's own handling.
      if (!st.isDirectory()) return { kind: 'blocked' }
      if (isOpaque(cur)) hiddenBelow = true
    }
    if (hiddenBelow) return { kind: 'missing' }
  }
  return { kind: 'missing' }
}

/** The key of the init layer for these layers and mount points. */
export function initLayerKey(chainIds: readonly string[], targets: readonly MountTarget[]): string {
  const canonical = [...targets].map((t) => [t.path, t.type, t.mode ?? null]).sort((a, b) => String(a[0]).localeCompare(String(b[0])))
  return createHash('sha256').update(JSON.stringify({ chainIds, targets: canonical })).digest('hex')
}

/**
 * Builds the init layer's tree in `dir`: each target the image lacks, with every parent
 * directory the image also lacks or that must hold it (parents copy the image's attributes).
 * Returns how many targets it made.
 */
function buildTree(dir: string, layers: string[], targets: readonly MountTarget[]): number {
  let made = 0
  const madeDirs = new Set<string>()
  for (const t of targets) {
    const parts = t.path.split('/').filter(Boolean)
    if (parts.length === 0 || lookup(layers, parts).kind !== 'missing') continue
    // Parents: present in the image → same attributes here; missing → 0755 root.
    let blocked = false
    const parents: { rel: string; st?: Stats }[] = []
    for (let i = 1; i < parts.length; i++) {
      const found = lookup(layers, parts.slice(0, i))
      if (found.kind === 'blocked' || (found.kind === 'present' && !found.st.isDirectory())) {
        blocked = true
        break
      }
      parents.push({ rel: parts.slice(0, i).join('/'), ...(found.kind === 'present' ? { st: found.st } : {}) })
    }
    if (blocked) continue
    for (const p of parents) {
      if (madeDirs.has(p.rel)) continue
      const at = join(dir, p.rel)
      mkdirSync(at, { mode: 0o755 })
      if (p.st) {
        chownSync(at, p.st.uid, p.st.gid)
        chmodSync(at, p.st.mode & 0o7777) // after chown, which clears set-id bits; not umasked
      }
      madeDirs.add(p.rel)
    }
    const at = join(dir, ...parts)
    // chmod: mkdir and open apply the umask, chmod does not.
    if (t.type === 'directory') {
      mkdirSync(at)
      chmodSync(at, t.mode ?? 0o755)
      madeDirs.add(parts.join('/'))
    } else {
      writeFileSync(at, '', { mode: t.mode ?? 0o644 })
      chmodSync(at, t.mode ?? 0o644)
    }
    made++
  }
  return made
}

/**
 * The init layer of an image for these mount points: its directory name under `init/`, made
 * now if it does not exist yet, or `undefined` when the image already has every one of them.
 * Safe against another process building the same one at the same time (one rename wins).
 * `Snapshots.prepare({ mountTargets })` calls it; the key goes into the snapshot's record.
 *
 * @example
 * ```ts
 * const key = await ensureInitLayer(paths, chainIds, [{ path: '/etc/hosts', type: 'file' }])
 * // key: 64 hex digits, the layer at paths.initLayer(key); undefined if the image has /etc/hosts
 * ```
 */
export async function ensureInitLayer(paths: StorePaths, chainIds: readonly string[], targets: readonly MountTarget[]): Promise<string | undefined> {
  if (targets.length === 0) return undefined
  const key = initLayerKey(chainIds, targets)
  const dir = paths.initLayer(key)
  const there = lstatOrUndefined(dir)
  if (there?.isDirectory()) return key
  // Layers never change once unpacked: an image that lacks none of the targets is known.
  const complete = `${paths.root}\0${key}`
  if (COMPLETE_IMAGES.has(complete)) return undefined
  const layers = [...chainIds].reverse().map((c) => paths.layerFs(c))
  const tmp = join(paths.initLayers, tmpName(`new-${key.slice(0, 12)}`))
  try {
    mkdirSync(paths.initLayers, { recursive: true, mode: 0o700 })
    mkdirSync(tmp, { mode: 0o755 })
    // The layer's root stands for the image's root (as a snapshot's upper does).
    const top = layers.map((l) => lstatOrUndefined(l)).find((s) => s?.isDirectory())
    if (top) {
      chownSync(tmp, top.uid, top.gid)
      chmodSync(tmp, top.mode & 0o7777)
    }
    const made = buildTree(tmp, layers, targets)
    if (made === 0) {
      await removeTree(tmp)
      COMPLETE_IMAGES.add(complete)
      return undefined
    }
    try {
      renameSync(tmp, dir)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
      await removeTree(tmp) // another process published the same layer first
    }
    return key
  } catch (err) {
    await removeTree(tmp).catch(() => undefined)
    throw ioError('make init layer', dir, err)
  }
}

/** `init/<key>` relative to the store's `l/` directory, where overlay's lower paths are resolved. */
export function initLayerLowerPath(key: string): string {
  return posix.join('..', 'init', key)
}
