/**
 * Crash-safe file writes (DESIGN.md, "Storage"): a temporary file in the same directory,
 * written, fsynced, renamed over the target, and the directory fsynced, so a crash leaves
 * either the old file or the new one — plus, at worst, a temporary that the next open removes.
 *
 * Temporaries are named `.tmp-<pid>-<random>-<name>`. The pid lets {@link removeTemporaries}
 * tell a crash's leftovers (their process is gone) from the work in flight of another process
 * using the same store, which it leaves alone.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { ioError } from '../errors.js'

/** The prefix of every temporary this package creates. */
export const TMP_PREFIX = '.tmp-'

/**
 * 12 random lowercase hex digits, for names that must not collide.
 *
 * @example
 * ```ts
 * randomSuffix() // '3f9a0c1d2b7e'
 * ```
 */
export function randomSuffix(): string {
  return randomBytes(6).toString('hex')
}

/**
 * The name of a new temporary for `name`: `.tmp-<pid>-<random>-<name>` (only the base name of
 * `name` is used).
 *
 * @example
 * ```ts
 * const tmp = path.join(paths.tmp, tempName('blob'))   // …/tmp/.tmp-4242-3f9a0c1d2b7e-blob
 * ```
 */
export function tempName(name: string): string {
  return `${TMP_PREFIX}${process.pid}-${randomSuffix()}-${path.basename(name)}`
}

/**
 * A temporary path beside `file` (same directory, so a rename onto `file` is atomic).
 *
 * @example
 * ```ts
 * tempPathFor('/var/lib/ctr/images.json') // '/var/lib/ctr/.tmp-4242-3f9a0c1d2b7e-images.json'
 * ```
 */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), tempName(file))
}

/**
 * Flushes a directory's entries (a rename or a new file in it) to disk. File systems that
 * cannot fsync a directory (`EINVAL`, `ENOTSUP`) are tolerated.
 *
 * @example
 * ```ts
 * await fs.rename(tmp, final)
 * await fsyncDir(path.dirname(final))
 * ```
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined
  try {
    fh = await fs.open(dir, 'r')
    await fh.sync()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF') throw ioError('fsync directory', dir, err)
  } finally {
    await fh?.close().catch(() => undefined)
  }
}

/** Options of {@link writeFileAtomic}. */
export interface WriteAtomicOptions {
  /** fsync the file before the rename and the directory after it (default true). */
  fsync?: boolean
  /** File mode (default 0o644). */
  mode?: number
}

/**
 * Replaces `file` with `data` atomically: a temporary in the same directory, written, fsynced,
 * renamed over `file`, then the directory fsynced. On any failure the temporary is removed and
 * the old `file` (if any) is untouched. Throws `ERR_STORE_IO` naming the file.
 *
 * @example
 * ```ts
 * await writeFileAtomic('/var/lib/ctr/images.json', JSON.stringify(doc))
 * await writeFileAtomic('/tmp/ctr-x/cache.json', '{}', { fsync: false })
 * ```
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: WriteAtomicOptions = {}): Promise<void> {
  const durable = options.fsync ?? true
  const tmp = tempPathFor(file)
  let fh: fs.FileHandle | undefined
  try {
    try {
      fh = await fs.open(tmp, 'wx', options.mode ?? 0o644)
      await fh.writeFile(data)
      if (durable) await fh.sync()
      await fh.close()
      fh = undefined
      await fs.rename(tmp, file)
    } catch (err) {
      throw ioError('write', file, err)
    }
    if (durable) await fsyncDir(path.dirname(file))
  } catch (err) {
    await fh?.close().catch(() => undefined)
    await fs.rm(tmp, { force: true }).catch(() => undefined)
    throw err
  }
}

/**
 * Whether a process with this pid exists (in our pid namespace).
 *
 * @example
 * ```ts
 * processAlive(process.pid) // true
 * processAlive(999999999)   // false
 * ```
 */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The pid a temporary's name carries: `.tmp-<pid>-…` ({@link tempName}'s pattern, which the
 * snapshot code follows too).
 *
 * @example
 * ```ts
 * temporaryOwner('.tmp-4242-3f9a0c1d2b7e-blob') // 4242
 * temporaryOwner('.tmp-blob')                   // undefined
 * ```
 */
export function temporaryOwner(name: string): number | undefined {
  const m = /^\.tmp-(\d{1,10})-/.exec(name)
  return m === null ? undefined : Number(m[1])
}

/** Options of {@link removeTemporaries}. */
export interface RemoveTemporariesOptions {
  /**
   * Remove temporaries of live processes too (default false: a temporary whose name carries
   * the pid of a running process other than this one is work in flight and is kept).
   */
  all?: boolean
}

/**
 * Removes the temporaries (`.tmp-*` files and directories) a crash left in `dir`: those whose
 * name carries no pid, or the pid of a process that no longer exists. Temporaries of running
 * processes are kept (another process may be writing into the same store), and so are this
 * process's own (in flight). A missing `dir` is not an error. Returns the names removed.
 *
 * @example
 * ```ts
 * await removeTemporaries(paths.tmp)             // after a crash: ['.tmp-4242-3f9a…-blob']
 * ```
 */
export async function removeTemporaries(dir: string, options: RemoveTemporariesOptions = {}): Promise<string[]> {
  let names: string[]
  try {
    names = await fs.readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw ioError('read directory', dir, err)
  }
  const removed: string[] = []
  for (const name of names) {
    if (!name.startsWith(TMP_PREFIX)) continue
    const owner = temporaryOwner(name)
    if (!options.all && owner !== undefined && (owner === process.pid || processAlive(owner))) continue
    const p = path.join(dir, name)
    try {
      await fs.rm(p, { recursive: true, force: true })
    } catch (err) {
      throw ioError('remove temporary', p, err)
    }
    removed.push(name)
  }
  return removed
}
