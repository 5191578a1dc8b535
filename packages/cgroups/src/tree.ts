/** Creating and removing cgroup directories: the parts both versions share. */
import fsSync, { promises as fs } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { errnoName, mkdirs, rmdirs } from '@ctr/native'
import { CgroupError } from './errors.js'

/** mkdir of `dir` below `base` (which exists), one level at a time; returns the levels it made. */
export async function mkdirBelow(base: string, dir: string, onLevel?: (level: string) => Promise<void>): Promise<string[]> {
  const made: string[] = []
  let cur = base
  for (const part of path.relative(base, dir).split('/').filter(Boolean)) {
    cur = path.join(cur, part)
    try {
      await fs.mkdir(cur)
      made.push(cur)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'EEXIST') {
        throw new CgroupError(code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'ERR_CGROUP_NOT_DELEGATED' : 'ERR_CGROUP_IO', `mkdir ${cur}: ${code}`, {
          path: cur,
          cause: err,
          ...(code ? { errnoCode: code } : {}),
          ...(code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? { hint: `this process may not create cgroups below ${base}; run as root, or under a systemd unit with Delegate=yes` }
            : {}),
        })
      }
    }
    if (onLevel) await onLevel(cur)
  }
  return made
}

/** The error of a leaf mkdir that failed with `code`. */
function leafError(dir: string, code: string | undefined, cause?: unknown): CgroupError {
  if (code === 'EEXIST') return new CgroupError('ERR_CGROUP_EXISTS', `cgroup ${dir} already exists`, { path: dir })
  return new CgroupError('ERR_CGROUP_IO', `mkdir ${dir}: ${code}`, { path: dir, ...(cause ? { cause } : {}), ...(code ? { errnoCode: code } : {}) })
}

/** Creates the leaf directory itself: it must not exist yet. */
export async function mkdirLeaf(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir)
  } catch (err) {
    throw leafError(dir, (err as NodeJS.ErrnoException).code, err)
  }
}

/**
 * Creates several leaf directories (one per hierarchy) as one thread-pool job: one call for a
 * v1 cgroup's nine directories instead of nine promise round trips, each costing more
 * main-thread time than the in-memory mkdir. Returns, per directory, `undefined` when it was
 * made or the error its {@link mkdirLeaf} would have thrown.
 */
export async function mkdirLeaves(dirs: string[]): Promise<(CgroupError | undefined)[]> {
  const errs = await mkdirs(dirs, 0o755)
  return errs.map((e, i) => (e === 0 ? undefined : leafError(dirs[i]!, errnoName(e))))
}

/** Sub-cgroups of `dir`, deepest first. */
async function subdirsDeepestFirst(dir: string): Promise<string[]> {
  const out: string[] = []
  let entries: import('node:fs').Dirent[]
  try {
    entries = await fs.readdir(dir, { withFileTypes: true })
  } catch {
    return out
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue
    const sub = path.join(dir, e.name)
    out.push(...(await subdirsDeepestFirst(sub)), sub)
  }
  return out
}

/**
 * rmdir of a cgroup and everything below it, children first. EBUSY (processes still leaving,
 * or the kernel still tearing down) is retried until `deadline`; a missing directory is fine.
 */
export async function removeTree(dir: string, deadline: number): Promise<void> {
  for (const d of [...(await subdirsDeepestFirst(dir)), dir]) {
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        await fs.rmdir(d)
        break
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT') break
        if (code === 'EBUSY' && Date.now() < deadline) {
          await sleep(delay)
          continue
        }
        throw new CgroupError(code === 'EBUSY' ? 'ERR_CGROUP_BUSY' : 'ERR_CGROUP_IO', `rmdir ${d}: ${code}`, {
          path: d,
          cause: err,
          ...(code ? { errnoCode: code } : {}),
        })
      }
    }
  }
}

/** rmdir of one cgroup directory: true when it is gone (or was), false when busy or not empty. */
export async function rmdirIfEmpty(dir: string): Promise<boolean> {
  try {
    await fs.rmdir(dir)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return true
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false
    throw new CgroupError('ERR_CGROUP_IO', `rmdir ${dir}: ${code}`, { path: dir, cause: err, ...(code ? { errnoCode: code } : {}) })
  }
}

/** {@link rmdirIfEmpty} of several directories as one thread-pool job (see {@link mkdirLeaves}). */
export async function rmdirsIfEmpty(dirs: string[]): Promise<boolean[]> {
  const errs = await rmdirs(dirs)
  return errs.map((e, i) => {
    const code = errnoName(e)
    if (e === 0 || code === 'ENOENT') return true
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false
    throw new CgroupError('ERR_CGROUP_IO', `rmdir ${dirs[i]}: ${code}`, { path: dirs[i], ...(code ? { errnoCode: code } : {}) })
  })
}

/**
 * Removes the shared parent levels between `base` (kept) and `dir` once they hold no other
 * cgroup: after the last container goes, nothing of ours stays on the host.
 */
export async function removeIfUnused(base: string, dir: string): Promise<void> {
  for (const d of levelsUp(base, dir)) {
    try {
      await fs.rmdir(d)
    } catch {
      return // in use (another cgroup below it, or processes): keep it and what is above
    }
  }
}

/** {@link removeIfUnused}, synchronously: for a process's 'exit' handler, where nothing can be awaited. */
export function removeIfUnusedSync(base: string, dir: string): void {
  for (const d of levelsUp(base, dir)) {
    try {
      fsSync.rmdirSync(d)
    } catch {
      return
    }
  }
}

/** `dir` and each directory above it, up to (not including) `base`. */
function* levelsUp(base: string, dir: string): Generator<string> {
  for (let d = dir; d.startsWith(base + '/'); d = path.dirname(d)) yield d
}

/** Waits until `check()` is true or the deadline passes; returns the last answer. */
export async function waitUntil(check: () => Promise<boolean>, deadline: number): Promise<boolean> {
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await sleep(delay)
  }
}

/** Signals each pid (all in a cgroup of ours); one that exited meanwhile is skipped. */
export function signalEach(pids: number[], signal: number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // exited meanwhile
    }
  }
}
