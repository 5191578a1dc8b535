/**
 * Overlay snapshots: a container's root file system, as an overlay of an image's unpacked
 * layers with its own upper (copy-on-write) directory.
 *
 * ```
 * <root>/snapshots/<id>/snapshot.json   the SnapshotRecord, written before the directory gets its name
 * <root>/snapshots/<id>/upper/          the snapshot's changes (absent when read-only)
 * <root>/snapshots/<id>/work/           overlay's work directory (absent when read-only)
 * <root>/snapshots/<id>/merged/         the mount point: the container's root file system
 * <root>/snapshots/<id>/empty/          an empty bottom layer, only where overlay needs one
 * <root>/snapshots/.tmp-<pid>-…         a snapshot being created or removed
 * ```
 *
 * A snapshot exists under its id only once complete: it is built under a temporary name and
 * renamed into place, and removal renames it away before deleting it. Whether it is mounted is
 * never stored, it is read from `/proc/self/mountinfo`, so a crash (even SIGKILL, with the mount
 * left behind) leaves nothing that `remove` or `recoverSnapshots` cannot handle.
 */
import { lstatSync, statSync, type Stats } from 'node:fs'
import { chmod, chown, mkdir, readdir, realpath, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { errnoName, FsBatchOp, fsBatch, mountIn, removeTree as nativeRemoveTree, type FsBatchStep } from '@ctr/native'
import { z } from 'zod'
import { StoreError, ioError } from '../errors.js'
import { StorePaths, type SnapshotRecord } from '../paths.js'
import { mountsUnder, readMountinfo, unmountAllUnder, type MountEntry } from './mountinfo.js'
import { needsEmptyLower, overlayMountSpec, type OverlayMountSpec } from './mount-spec.js'
import { ensureInitLayer, type MountTarget } from './init-layer.js'
import { fsyncDir, processAlive, temporaryOwner, writeFileAtomic } from '../fs/atomic.js'
import { SnapshotIdSchema, checkId, readRecord, readRecordSync, tmpName } from './record.js'

/** A snapshot as {@link Snapshots} returns it. */
export interface Snapshot {
  id: string
  /** The `merged` directory: the root file system, when {@link Snapshot.mounted}. */
  rootfs: string
  /** The upper (copy-on-write) directory; `null` for a read-only snapshot. */
  upper: string | null
  /** overlay's work directory; `null` for a read-only snapshot. */
  work: string | null
  readonly: boolean
  /** Whether its overlay is mounted on `rootfs` in the calling process's mount namespace. */
  mounted: boolean
  record: SnapshotRecord
  /** How to mount it elsewhere, e.g. inside a container's mount namespace (see `overlayMountSteps`). */
  mount: OverlayMountSpec
}

/** Options of {@link Snapshots}. */
export interface SnapshotsOptions {
  /** fsync records and directories as they are written (default `true`; off only for throwaway stores). */
  fsync?: boolean
}

/** What {@link Snapshots.prepare} takes. */
export interface PrepareInput {
  /** `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`. */
  id: string
  /** The reference it is prepared from, as the user gave it (recorded, not resolved here). */
  image: string
  /** The digest of the platform manifest the layers come from. */
  manifestDigest: string
  /** Chain ids of the layers, bottom first; each is already unpacked at `paths.layerFs(chainId)`. */
  chainIds: string[]
  /** A read-only overlay with no upper directory: writes fail with EROFS. */
  readonly?: boolean
  /** Mount it in the caller's mount namespace on `snapshots/<id>/merged` (default `true`). */
  mount?: boolean
  /**
   * Mount with overlay's `volatile` option: no syncs to the upper file system, so unmounting
   * does not flush it (a `syncfs` of the whole host disk, tens of ms). For throwaway
   * container roots: after a crash the snapshot can only be removed, not remounted. Its
   * record and directory are not fsynced either (creation and removal skip the store's fsync).
   */
  volatile?: boolean
  /**
   * Mount points every container of this image needs (`/etc/hosts`, `/proc`, …). Those the
   * image lacks are provided by a shared, read-only init layer on top of the image's layers
   * (made once per image and set of targets, as Docker's init layer), so a container does not
   * create them in its own upper directory at every start.
   */
  mountTargets?: MountTarget[]
}

const MountTargetSchema = z.object({
  path: z.string().regex(/^(\/[^/\0]+)+$/, 'an absolute path without empty components').refine((p) => !p.split('/').some((c) => c === '.' || c === '..'), 'no . or .. components'),
  type: z.enum(['file', 'directory']),
  mode: z.number().int().min(0).max(0o7777).optional(),
})

const PrepareSchemaSource = z.object({
  id: SnapshotIdSchema,
  image: z.string(),
  manifestDigest: z.string().min(1),
  chainIds: z.array(z.string()),
  readonly: z.boolean().optional(),
  mount: z.boolean().optional(),
  volatile: z.boolean().optional(),
  mountTargets: z.array(MountTargetSchema).max(64).optional(),
})
// Parsed at every prepare: compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
const PrepareSchema = z.compile(PrepareSchemaSource)

const CHAIN_ID_RE = /^(?:(?:sha256:)?[0-9a-f]{64}|(?:sha512:)?[0-9a-f]{128})$/

/**
 * Prepares, mounts, lists and removes overlay snapshots in a store.
 *
 * @example
 * ```ts
 * const snapshots = new Snapshots(new StorePaths('/var/lib/ctr'))
 * const snap = await snapshots.prepare({ id: 'c1', image: 'alpine:3.20', manifestDigest, chainIds })
 * await writeFile(join(snap.rootfs, 'hello'), 'hi')   // lands in snap.upper
 * await snapshots.remove('c1')                         // unmounts and deletes; idempotent
 * ```
 */
export class Snapshots {
  readonly paths: StorePaths
  readonly #fsync: boolean
  /** Operations on one id run one after the other within this process. */
  readonly #locks = new Map<string, Promise<unknown>>()

  constructor(paths: StorePaths, opts: SnapshotsOptions = {}) {
    // Mount targets must be absolute (mountIn resolves relative paths against `l/`).
    this.paths = new StorePaths(resolve(paths.root))
    this.#fsync = opts.fsync ?? true
  }

  /**
   * Creates a snapshot of an image's layers and (by default) mounts it. The directory is built
   * under a temporary name, its `snapshot.json` written crash-safely, then renamed into place
   * and mounted; on any failure nothing is left (no directory, no mount).
   *
   * Throws `ERR_STORE_INVALID` (field `id`, `chainIds`, …) for bad input, `ERR_STORE_EXISTS`
   * when the id is taken, `ERR_STORE_NOT_FOUND` when a layer is not unpacked, `ERR_STORE_MOUNT`
   * when the mount fails or the image is too deep to mount.
   *
   * @example
   * ```ts
   * const snap = await snapshots.prepare({ id: 'c1', image: 'busybox:latest', manifestDigest, chainIds })
   * snap.rootfs  // '/var/lib/ctr/snapshots/c1/merged', mounted
   * const ro = await snapshots.prepare({ id: 'c2', image, manifestDigest, chainIds, readonly: true, mount: false })
   * ro.mount     // { fstype: 'overlay', cwd: '/var/lib/ctr/l', data: 'lowerdir=…', flags: 1, … }
   * ```
   */
  async prepare(input: PrepareInput): Promise<Snapshot> {
    const parsed = PrepareSchema.safeParse(input)
    if (!parsed.success) {
      const iss = parsed.error.issues[0]
      const field = iss?.path.join('.') || 'input'
      throw new StoreError('ERR_STORE_INVALID', `prepare snapshot: ${field}: ${iss?.message ?? 'invalid'}`, { field })
    }
    const args = parsed.data
    args.chainIds.forEach((c, i) => {
      if (!CHAIN_ID_RE.test(c)) {
        throw new StoreError('ERR_STORE_INVALID', `prepare snapshot ${args.id}: chainIds[${i}]: not a chain id (sha256:<64 hex digits>): ${JSON.stringify(c)}`, {
          field: `chainIds.${i}`,
        })
      }
    })
    return this.#locked(args.id, () => this.#prepare(args))
  }

  async #prepare(args: z.output<typeof PrepareSchema>): Promise<Snapshot> {
    const { paths } = this
    const dir = paths.snapshot(args.id)
    const readonly = args.readonly ?? false
    // An existing id is refused here, and again by the rename that publishes the new one.
    // (One lstat of a directory entry the kernel has cached: not worth a thread-pool trip.)
    if (entryExists(dir)) throw new StoreError('ERR_STORE_EXISTS', `snapshot ${args.id} already exists`, { path: dir })

    // Every layer must be unpacked; the top one's root directory gives the upper its attributes.
    const roots = layerRoots(paths, args.chainIds, `prepare snapshot ${args.id}`)
    const top = roots.at(-1)

    const initLayer = args.mountTargets ? await ensureInitLayer(paths, args.chainIds, args.mountTargets) : undefined
    const record: SnapshotRecord = {
      id: args.id,
      image: args.image,
      manifestDigest: args.manifestDigest,
      chainIds: [...args.chainIds],
      readonly,
      ...(args.volatile && !readonly ? { volatile: true } : {}),
      ...(initLayer ? { initLayer } : {}),
      created: new Date().toISOString(),
    }

    // A volatile snapshot does not survive a crash (overlay refuses its upper afterwards, and
    // its container is gone anyway), so its record need not be durable either: no fsyncs.
    const durable = this.#fsync && !record.volatile
    const tmp = join(resolve(paths.snapshots), tmpName(`new-${args.id}`))
    const json = JSON.stringify(record, null, 2) + '\n'
    try {
      if (durable) await this.#createDurably(tmp, dir, record, top, json)
      else await createInOneJob(resolve(paths.snapshots), tmp, resolve(dir), record, top, json)
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {})
      throw err instanceof StoreError ? err : ioError('create snapshot', tmp, err)
    }

    try {
      const spec = await overlayMountSpec(paths, record)
      let mounted = false
      if (args.mount ?? true) {
        this.#mount(spec, record.id)
        mounted = true
      }
      return this.#snapshot(record, spec, mounted)
    } catch (err) {
      // Nothing stays: not the mount (if it got that far), not the directory.
      await this.#removeDir(args.id).catch(() => {})
      throw err instanceof StoreError ? err : ioError('prepare snapshot', dir, err)
    }
  }

  /** The snapshot's directory, made in a temporary and published by rename, each step synced. */
  async #createDurably(tmp: string, dir: string, record: SnapshotRecord, top: Stats | undefined, json: string): Promise<void> {
    await this.#ensureSnapshotsDir()
    await mkdir(tmp, { mode: 0o700 })
    // Its subdirectories are independent of each other: made in parallel.
    await Promise.all([
      // merged is the container's `/` before the overlay hides it, and the mount point after.
      mkdirMode(join(tmp, 'merged'), 0o755),
      ...(record.readonly
        ? []
        : [
          (async () => {
            // The upper root is the overlay's root directory: it takes the image's root
            // attributes (as Docker's overlay2 does), else every container's `/` would be
            // 0755 root:root.
            await mkdir(join(tmp, 'upper'))
            if (top) await chown(join(tmp, 'upper'), top.uid, top.gid)
            await chmod(join(tmp, 'upper'), top ? top.mode & 0o7777 : 0o755)
          })(),
          mkdirMode(join(tmp, 'work'), 0o700),
        ]),
      ...(needsEmptyLower(record) ? [mkdirMode(join(tmp, 'empty'), 0o755)] : []),
    ])
    // The record, then the temporary directory's entries (its fsync covers upper/, work/,
    // merged/ too), are durable before the rename that publishes them.
    await writeFileAtomic(join(tmp, 'snapshot.json'), json, { fsync: true })
    try {
      await rename(tmp, dir)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new StoreError('ERR_STORE_EXISTS', `snapshot ${record.id} already exists`, { path: dir, cause: err })
      }
      throw ioError('rename', dir, err)
    }
    await fsyncDir(this.paths.snapshots)
  }

  /**
   * A snapshot by id, with whether it is mounted here. Throws `ERR_STORE_NOT_FOUND`.
   *
   * @example
   * ```ts
   * const snap = await snapshots.get('c1')
   * if (!snap.mounted) await snapshots.mountSnapshot('c1')
   * ```
   */
  async get(id: string): Promise<Snapshot> {
    checkId(id)
    const record = await this.#record(id)
    const mounts = await readMountinfo()
    return this.#snapshot(record, await overlayMountSpec(this.paths, record), await this.#isMounted(record.id, mounts))
  }

  /**
   * Every snapshot in the store, by id. Snapshots being created or removed are not listed.
   *
   * @example
   * ```ts
   * for (const s of await snapshots.list()) console.log(s.id, s.record.image, s.mounted)
   * ```
   */
  async list(): Promise<Snapshot[]> {
    let names: string[]
    try {
      names = await readdir(this.paths.snapshots)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw ioError('list', this.paths.snapshots, err)
    }
    const mounts = await readMountinfo()
    const out: Snapshot[] = []
    for (const name of names.sort()) {
      if (!SnapshotIdSchema.safeParse(name).success) continue // .tmp-* and strays
      const record = await readRecord(this.paths.snapshotMeta(name)).catch(() => undefined)
      if (!record || record.id !== name) continue
      out.push(this.#snapshot(record, await overlayMountSpec(this.paths, record), await this.#isMounted(name, mounts)))
    }
    return out
  }

  /**
   * Mounts a snapshot on its `merged` directory in the caller's mount namespace; a snapshot
   * that is already mounted there is returned as it is.
   *
   * @example
   * ```ts
   * const snap = await snapshots.mountSnapshot('c1')   // after a reboot, say
   * ```
   */
  async mountSnapshot(id: string): Promise<Snapshot> {
    checkId(id)
    return this.#locked(id, async () => {
      const record = await this.#record(id)
      const spec = await overlayMountSpec(this.paths, record)
      if (!(await this.#isMounted(id, await readMountinfo()))) {
        layerRoots(this.paths, record.chainIds, `mount snapshot ${id}`) // ERR_STORE_NOT_FOUND for a layer collected meanwhile
        this.#mount(spec, id)
      }
      return this.#snapshot(record, spec, true)
    })
  }

  /**
   * Unmounts a snapshot (and anything mounted below its root) in the caller's mount namespace;
   * busy mounts are detached. Not being mounted is fine; an unknown id is `ERR_STORE_NOT_FOUND`.
   *
   * @example
   * ```ts
   * await snapshots.unmount('c1')   // the upper directory keeps the changes
   * ```
   */
  async unmount(id: string): Promise<void> {
    checkId(id)
    return this.#locked(id, async () => {
      await this.#record(id)
      const merged = await realpath(join(this.paths.snapshot(id), 'merged')).catch(() => undefined)
      if (merged !== undefined) await unmountAllUnder(merged, `unmount snapshot ${id}`)
    })
  }

  /**
   * Unmounts and deletes a snapshot. Idempotent: an id that does not exist is fine. It works
   * after a crash too — on a snapshot whose mount went away, or one still mounted by a process
   * that was killed. The directory is renamed away before it is deleted, so a crash in the
   * middle never leaves a half-deleted snapshot under its id.
   *
   * Only mounts in the caller's mount namespace are seen: stop containers that mounted the
   * snapshot in their own namespace first.
   *
   * @example
   * ```ts
   * await snapshots.remove('c1')
   * await snapshots.remove('c1')   // fine
   * ```
   */
  async remove(id: string): Promise<void> {
    checkId(id)
    return this.#locked(id, () => this.#removeDir(id))
  }

  async #removeDir(id: string): Promise<void> {
    const dir = this.paths.snapshot(id)
    let record: SnapshotRecord | undefined
    try {
      record = readRecordSync(this.paths.snapshotMeta(id))
    } catch {
      record = undefined // unreadable: removed all the same
    }
    if (!record && !entryExists(dir)) return
    // A container's snapshot is mounted inside its own mount namespace only, so usually
    // nothing here is: the host's mount table (which can be long) is read and undone only when
    // `merged` is a mount point, or when the removal below runs into a mount.
    if (isMountPoint(join(dir, 'merged'))) await unmountAllUnder(await realpath(dir), `remove snapshot ${id}`)
    const tmp = join(this.paths.snapshots, tmpName(`rm-${id}`))
    try {
      await rename(dir, tmp)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return // removed meanwhile
      throw ioError('remove snapshot', dir, err)
    }
    // Durable once renamed away: a crash then leaves a temporary the next open removes. Not
    // for a volatile snapshot, whose creation was not made durable either.
    if (this.#fsync && !record?.volatile) await fsyncDir(this.paths.snapshots)
    try {
      await removeTree(tmp, `remove snapshot ${id}`)
    } catch (err) {
      if ((err as StoreError).code !== 'ERR_STORE_MOUNT') throw err
      await unmountAllUnder(await realpath(tmp), `remove snapshot ${id}`)
      await removeTree(tmp, `remove snapshot ${id}`)
    }
  }

  async #record(id: string): Promise<SnapshotRecord> {
    const record = await readRecord(this.paths.snapshotMeta(id))
    if (!record) throw new StoreError('ERR_STORE_NOT_FOUND', `no snapshot ${id}`, { path: this.paths.snapshot(id) })
    return record
  }

  #mount(spec: OverlayMountSpec, id: string): void {
    try {
      mountIn(spec.cwd, spec.source, spec.target, spec.fstype, spec.flags, spec.data)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      throw new StoreError('ERR_STORE_MOUNT', `mount snapshot ${id} on \`${spec.target}\`: ${code ?? String(err)} (overlay ${spec.data.length > 200 ? spec.data.slice(0, 200) + '…' : spec.data})`, {
        path: spec.target,
        cause: err,
      })
    }
  }

  async #isMounted(id: string, mounts: MountEntry[]): Promise<boolean> {
    let merged: string
    try {
      merged = await realpath(join(this.paths.snapshot(id), 'merged'))
    } catch {
      return false
    }
    return mounts.some((m) => m.mountPoint === merged && m.fstype === 'overlay')
  }

  #snapshot(record: SnapshotRecord, mount: OverlayMountSpec, mounted: boolean): Snapshot {
    const dir = this.paths.snapshot(record.id)
    return {
      id: record.id,
      rootfs: join(dir, 'merged'),
      upper: record.readonly ? null : join(dir, 'upper'),
      work: record.readonly ? null : join(dir, 'work'),
      readonly: record.readonly,
      mounted,
      record,
      mount,
    }
  }

  async #ensureSnapshotsDir(): Promise<void> {
    // 0700: the layers hold set-uid programs and the uppers hold containers' files; host users
    // have no business in them (Docker's overlay2 directory is 0710 for the same reason).
    await mkdir(this.paths.snapshots, { recursive: true, mode: 0o700 })
  }

  async #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(id) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.#locks.set(id, tail)
    try {
      return await run
    } finally {
      if (this.#locks.get(id) === tail) this.#locks.delete(id)
    }
  }
}

/**
 * The root directories of a snapshot's layers (`layers/<hex>/fs`), bottom first; throws
 * `ERR_STORE_NOT_FOUND` naming the first one that is not unpacked. Synchronous on purpose: 128
 * tiny stat calls are faster than 128 trips through libuv's thread pool.
 */
function layerRoots(paths: StorePaths, chainIds: readonly string[], what: string): Stats[] {
  return chainIds.map((chainId) => {
    const fs = paths.layerFs(chainId)
    let st: Stats | undefined
    try {
      st = statSync(fs)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('stat', fs, err)
    }
    if (st?.isDirectory()) return st
    throw new StoreError('ERR_STORE_NOT_FOUND', `${what}: layer ${chainId} is not unpacked (no \`${fs}\`)`, { path: fs, digest: chainId })
  })
}

/**
 * Removes what crashed processes left in `snapshots/`: the `.tmp-*` directories of snapshots
 * that were being created or removed (unmounting anything below them first). Directories whose
 * creating process is still alive are left alone, so it is safe to call while another process
 * uses the store. Call it when the store is opened. Returns the names it removed.
 *
 * @example
 * ```ts
 * await recoverSnapshots(new StorePaths('/var/lib/ctr'))
 * ```
 */
export async function recoverSnapshots(paths: StorePaths): Promise<string[]> {
  const dir = resolve(paths.snapshots)
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw ioError('list', dir, err)
  }
  const removed: string[] = []
  for (const name of names) {
    if (!name.startsWith('.tmp-')) continue
    const pid = temporaryOwner(name)
    if (pid !== undefined && processAlive(pid)) continue
    const path = join(dir, name)
    await unmountAllUnder(await realpath(path).catch(() => path), `recover \`${path}\``)
    await removeTree(path, `recover \`${path}\``)
    removed.push(name)
  }
  return removed
}

/** rm -rf, refusing when anything is still mounted below (rm would walk into the mount). */
async function removeTree(path: string, what: string): Promise<void> {
  // One job on the thread pool, which refuses to descend into a mount (EBUSY names it). The
  // walk below it is the fallback for old kernels (no statx mount id) and very deep trees.
  try {
    await nativeRemoveTree(path)
    return
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EBUSY') throw new StoreError('ERR_STORE_MOUNT', `${what}: \`${e.path ?? path}\` is still mounted`, { path: e.path ?? path, cause: err })
    if (e.code !== 'ENOSYS' && e.code !== 'ELOOP') throw ioError(what, e.path ?? path, err)
  }
  const real = await realpath(path).catch(() => path)
  const left = mountsUnder(await readMountinfo(), real)
  if (left.length > 0) {
    throw new StoreError('ERR_STORE_MOUNT', `${what}: \`${left[0]!.mountPoint}\` is still mounted`, { path: left[0]!.mountPoint })
  }
  try {
    await rm(path, { recursive: true, force: true, maxRetries: 3 })
  } catch (err) {
    throw ioError(what, path, err)
  }
}

/** The syscall each fsBatch step makes, for the error of one that failed. */
const FS_BATCH_SYSCALL: Record<FsBatchStep[0], string> = {
  [FsBatchOp.Mkdir]: 'mkdir', [FsBatchOp.MkdirExistOk]: 'mkdir', [FsBatchOp.Lchown]: 'chown',
  [FsBatchOp.Chmod]: 'chmod', [FsBatchOp.WriteNew]: 'write', [FsBatchOp.Rename]: 'rename',
}

/**
 * The snapshot's directory as one native job (see `fsBatch`): the same entries, owner, modes,
 * record and publishing rename as the durable path, without fsyncs, in one thread-pool trip
 * instead of a dozen promise round trips.
 */
async function createInOneJob(snapshots: string, tmp: string, dir: string, record: SnapshotRecord, top: Stats | undefined, json: string): Promise<void> {
  const S = FsBatchOp
  const steps: FsBatchStep[] = [
    [S.MkdirExistOk, snapshots, 0o700],
    [S.Mkdir, tmp, 0o700],
    [S.Mkdir, join(tmp, 'merged'), 0o755],
    [S.Chmod, join(tmp, 'merged'), 0o755],
  ]
  if (!record.readonly) {
    const upper = join(tmp, 'upper')
    // The upper root takes the image's root attributes (see the durable path).
    steps.push([S.Mkdir, upper, 0o755])
    if (top) steps.push([S.Lchown, upper, top.uid, top.gid])
    steps.push([S.Chmod, upper, top ? top.mode & 0o7777 : 0o755], [S.Mkdir, join(tmp, 'work'), 0o700], [S.Chmod, join(tmp, 'work'), 0o700])
  }
  if (needsEmptyLower(record)) steps.push([S.Mkdir, join(tmp, 'empty'), 0o755], [S.Chmod, join(tmp, 'empty'), 0o755])
  steps.push([S.WriteNew, join(tmp, 'snapshot.json'), 0o644, 0, json], [S.Rename, tmp, 0, 0, dir])
  const failed = await fsBatch(steps)
  if (!failed) return
  const step = steps[failed.index]!
  const code = errnoName(failed.errno)
  if (step[0] === S.Rename && (code === 'ENOTEMPTY' || code === 'EEXIST')) {
    throw new StoreError('ERR_STORE_EXISTS', `snapshot ${record.id} already exists`, { path: dir })
  }
  const what = FS_BATCH_SYSCALL[step[0]]
  throw ioError(what, step[1], Object.assign(new Error(code), { code, errno: -failed.errno }))
}

/** Whether a path exists (without following a final link); a parent that is not a directory means no. */
function entryExists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw ioError('lstat', path, err)
  }
}

/**
 * Whether a directory is a mount point: its device differs from its parent's (an overlay's
 * does). Two lstats of entries the kernel has cached: cheaper on this thread than two
 * thread-pool trips.
 */
function isMountPoint(path: string): boolean {
  try {
    return lstatSync(path).dev !== lstatSync(join(path, '..')).dev
  } catch {
    return false
  }
}

async function mkdirMode(path: string, mode: number): Promise<void> {
  await mkdir(path, { mode })
  await chmod(path, mode) // the umask narrowed it
}
