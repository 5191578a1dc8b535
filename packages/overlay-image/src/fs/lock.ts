/**
 * A lock file shared by the processes that use one store (there is no daemon): `O_EXCL`
 * creation of `<name>.lock` holding the owner's pid. A lock whose owner is gone (a crash) is
 * taken over. Used to serialise read-modify-write updates of small files such as `images.json`.
 */
import { promises as fs } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { StoreError, ioError, throwIfAborted } from '../errors.js'
import { processAlive, randomSuffix } from './atomic.js'

/** Options of {@link withLockFile}. */
export interface LockOptions {
  /** How long to wait for another process's lock before failing with `ERR_STORE_IN_USE` (default 30 s). */
  timeoutMs?: number
  signal?: AbortSignal
}

/** Locks held by this process, so nested or concurrent in-process users queue instead of spinning. */
const local = new Map<string, Promise<void>>()

async function acquire(lockPath: string, token: string, options: LockOptions): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  let delay = 5
  for (;;) {
    throwIfAborted(options.signal, `lock ${lockPath}`)
    try {
      const fh = await fs.open(lockPath, 'wx', 0o644)
      try {
        await fh.writeFile(token)
      } finally {
        await fh.close()
      }
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('create lock', lockPath, err)
    }
    // Held: by a live process (wait), or left by a crash (take it over).
    let content = ''
    try {
      content = await fs.readFile(lockPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw ioError('read lock', lockPath, err)
    }
    const pid = Number(content.split(' ')[0])
    // This process's own pid with another token: a leftover (in-process users queue above).
    let stale = Number.isSafeInteger(pid) && pid > 0 && (pid === process.pid || !processAlive(pid))
    if (!stale && (content === '' || !Number.isSafeInteger(pid))) {
      // Created but not written yet, or garbage: stale only if it has been so for a while.
      try {
        const st = await fs.stat(lockPath)
        stale = Date.now() - st.mtimeMs > 10_000
      } catch {
        continue
      }
    }
    if (stale) {
      // Move it aside first, so two processes taking over the same stale lock cannot both
      // delete each other's fresh one: only the rename that still sees the stale content wins.
      const aside = `${lockPath}.stale-${randomSuffix()}`
      try {
        await fs.rename(lockPath, aside)
        const moved = await fs.readFile(aside, 'utf8')
        if (moved !== content) await fs.link(aside, lockPath).catch(() => undefined) // someone else's fresh lock: put it back
        await fs.rm(aside, { force: true })
      } catch {
        /* lost the race; retry */
      }
      continue
    }
    if (Date.now() > deadline) {
      throw new StoreError('ERR_STORE_IN_USE', `lock ${lockPath} is held by process ${content.split(' ')[0]}`, { path: lockPath })
    }
    await sleep(delay)
    delay = Math.min(delay * 2, 100)
  }
}

/**
 * Runs `fn` while holding the lock file `lockPath` (created with `O_EXCL`, holding this
 * process's pid; removed after). Waits while another live process holds it; takes it over
 * when its owner is dead. Within one process, callers queue.
 *
 * @example
 * ```ts
 * await withLockFile(`${paths.images}.lock`, async () => {
 *   const doc = await read(); doc.images[ref] = entry; await writeFileAtomic(paths.images, JSON.stringify(doc))
 * })
 * ```
 */
export async function withLockFile<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const before = local.get(lockPath) ?? Promise.resolve()
  let release!: () => void
  const mine = new Promise<void>((resolve) => (release = resolve))
  const chained = before.then(() => mine)
  local.set(lockPath, chained)
  await before
  const token = `${process.pid} ${randomSuffix()}`
  try {
    await acquire(lockPath, token, options)
    try {
      return await fn()
    } finally {
      // Remove it only if it is still ours.
      try {
        if ((await fs.readFile(lockPath, 'utf8')) === token) await fs.rm(lockPath, { force: true })
      } catch {
        /* gone already */
      }
    }
  } finally {
    release()
    if (local.get(lockPath) === chained) local.delete(lockPath)
  }
}
