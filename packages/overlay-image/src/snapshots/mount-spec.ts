/** The overlay mount of a snapshot, as data: what `mountIn` (or a spawn plan) needs to mount it. */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { MountFlag, Op, type Step } from '@ctr/native'
import { StoreError } from '../errors.js'
import { StorePaths, type SnapshotRecord } from '../paths.js'
import { ensureShortLink } from './links.js'
import { initLayerLowerPath } from './init-layer.js'

/**
 * How to mount a snapshot's overlay: `mount(source, target, fstype, flags, data)` with the
 * working directory `cwd`, because the paths in `data` are relative to it (see `mountIn` in
 * `@ctr/native`, or a spawn plan's `Chdir` step followed by its `Mount` step).
 */
export interface OverlayMountSpec {
  fstype: 'overlay'
  source: 'overlay'
  /** The snapshot's `merged` directory (absolute). Mount elsewhere if you like: nothing in `data` depends on it. */
  target: string
  /** The store's `l/` directory (absolute): `lowerdir`, `upperdir` and `workdir` in `data` are relative to it. */
  cwd: string
  /**
   * `lowerdir=<top short id>:…:<bottom short id>,upperdir=../snapshots/<id>/upper,workdir=../snapshots/<id>/work,index=off,redirect_dir=off,metacopy=off`
   * (a read-only snapshot has no `upperdir`/`workdir`). Never longer than {@link MOUNT_DATA_MAX}.
   */
  data: string
  /** `MS_RDONLY` for a read-only snapshot, else 0. */
  flags: number
}

/**
 * The overlay options every snapshot is mounted with, whatever the kernel's defaults
 * (module parameters or build options) say:
 *
 * - `index=off`: with the inode index on, an upper directory is tied to the exact lower layers
 *   it was first mounted with (their file handles are recorded and checked), and it needs
 *   `nfs_export`-style bookkeeping we do not want; Docker's overlay2 turns it off too. The cost:
 *   copying up one name of a hard-linked lower file breaks the link (the other names keep the
 *   lower inode), which is what Docker users see as well.
 * - `redirect_dir=off` and `metacopy=off`: with either on, the upper directory is no longer
 *   self-contained — a renamed lower directory becomes a redirect xattr, a chmod'd lower file a
 *   metadata-only copy whose data stays below — and `commit` could not turn the upper directory
 *   into a layer by walking it. With redirects off, renaming a lower directory fails with EXDEV
 *   and `mv` falls back to copying, as with Docker.
 * - not `userxattr`: the store runs as root and uses `trusted.overlay.*`, which is also what the
 *   layer unpacker writes (`trusted.overlay.opaque=y`).
 * - `volatile` only when the snapshot asks for it (throwaway container roots): by default a
 *   snapshot outlives reboots and its writes are synced like any file system's.
 */
export const OVERLAY_OPTIONS: readonly string[] = ['index=off', 'redirect_dir=off', 'metacopy=off']

/** `l/` directories this process has made or seen (only a store's removal takes one away). */
const linkDirsMade = new Set<string>()

/** mount(2) copies its data argument in one page: at most 4095 bytes and the NUL. */
export const MOUNT_DATA_MAX = 4095

/** overlay refuses a mount with no upper directory and a single lower one (checked on 6.18), and any mount with no lower. */
export function needsEmptyLower(record: Pick<SnapshotRecord, 'chainIds' | 'readonly' | 'initLayer'>): boolean {
  const lowers = record.chainIds.length + (record.initLayer ? 1 : 0)
  return lowers === 0 || (record.readonly && lowers === 1)
}

/**
 * Works out the mount of a snapshot, creating any missing short links (`l/<short id>`). Throws
 * `ERR_STORE_MOUNT` when even short links cannot fit the options in a page (about 300 layers).
 *
 * @example
 * ```ts
 * const spec = await overlayMountSpec(paths, record)
 * mountIn(spec.cwd, spec.source, spec.target, spec.fstype, spec.flags, spec.data)
 * ```
 */
export async function overlayMountSpec(paths: StorePaths, record: SnapshotRecord): Promise<OverlayMountSpec> {
  const root = resolve(paths.root)
  const cwd = join(root, 'l')
  const abs = new StorePaths(root)
  if (!linkDirsMade.has(cwd)) {
    await mkdir(cwd, { recursive: true, mode: 0o700 })
    linkDirsMade.add(cwd)
  }
  const shortIds = record.chainIds.map((c) => ensureShortLink(abs, c))
  const snap = `../snapshots/${record.id}`
  // overlay lists the top layer first; records list the bottom one first.
  const lowers = shortIds.reverse()
  if (record.initLayer) lowers.unshift(initLayerLowerPath(record.initLayer))
  if (needsEmptyLower(record)) lowers.push(`${snap}/empty`)
  const opts = [`lowerdir=${lowers.join(':')}`]
  if (!record.readonly) opts.push(`upperdir=${snap}/upper`, `workdir=${snap}/work`)
  opts.push(...OVERLAY_OPTIONS)
  if (record.volatile && !record.readonly) opts.push('volatile')
  const data = opts.join(',')
  const bytes = Buffer.byteLength(data)
  if (bytes > MOUNT_DATA_MAX) {
    throw new StoreError(
      'ERR_STORE_MOUNT',
      `snapshot ${record.id}: an image of ${record.chainIds.length} layers is too deep to mount: its overlay options take ${bytes} bytes even with short links, over the ${MOUNT_DATA_MAX}-byte limit of mount(2)`,
      { path: abs.snapshot(record.id) },
    )
  }
  return {
    fstype: 'overlay',
    source: 'overlay',
    target: join(abs.snapshot(record.id), 'merged'),
    cwd,
    data,
    flags: record.readonly ? MountFlag.RDONLY : 0,
  }
}

/**
 * The spawn-plan steps that mount a snapshot inside a child's mount namespace: `Chdir` to the
 * spec's `cwd`, then `Mount`. Put them before the root-filesystem steps (which bind the target
 * onto itself and pivot into it); those use absolute paths, so the changed working directory
 * does not matter, and the final `cwd` of the process is set after `pivot_root` anyway.
 *
 * @example
 * ```ts
 * const steps = [...overlayMountSteps(snap.mount), ...rootfsSteps]
 * ```
 */
export function overlayMountSteps(spec: OverlayMountSpec, target: string = spec.target): Step[] {
  return [
    { op: Op.Chdir, s: [spec.cwd] },
    { op: Op.Mount, s: [spec.source, target, spec.fstype, spec.data], n: [spec.flags] },
  ]
}
