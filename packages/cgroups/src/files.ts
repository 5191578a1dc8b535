/**
 * Reading and writing cgroup files, with errors that name the file and what was written:
 * "write 64m to /sys/fs/cgroup/…/memory.max: EINVAL", never a bare errno.
 */
import fsSync, { promises as fs } from 'node:fs'
import { CgroupError } from './errors.js'

/*
 * Reads are synchronous on purpose. A cgroup file is generated in memory when read (no disk,
 * no cgroup-wide lock): readFileSync takes ~10 µs, while an fs.promises read is four trips to
 * the thread pool (open, fstat, read, close) and ~100 µs of main-thread work — and a container
 * start, stats() and destroy read dozens of them. Writes and mkdir/rmdir stay asynchronous:
 * they can wait on the kernel's cgroup lock, held across an RCU grace period (milliseconds)
 * while another process is being moved between cgroups, and lowering a memory limit reclaims
 * memory first. The exception is the limits of a cgroup just made ({@link writeFresh}).
 */

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code
}

export async function readText(file: string): Promise<string> {
  try {
    return fsSync.readFileSync(file, 'utf8')
  } catch (err) {
    const code = errnoOf(err)
    throw new CgroupError(code === 'ENOENT' ? 'ERR_CGROUP_NOT_FOUND' : 'ERR_CGROUP_IO', `read ${file}: ${code ?? String(err)}`, {
      path: file,
      cause: err,
      ...(code ? { errnoCode: code } : {}),
    })
  }
}

/** The file's content, trimmed; undefined when the file does not exist (a kernel without it). */
export async function readOptional(file: string): Promise<string | undefined> {
  try {
    return fsSync.readFileSync(file, 'utf8').trim()
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined
    throw new CgroupError('ERR_CGROUP_IO', `read ${file}: ${errnoOf(err) ?? String(err)}`, { path: file, cause: err })
  }
}

export async function readNumber(file: string): Promise<number> {
  const t = (await readText(file)).trim()
  return t === 'max' ? Infinity : Number(t)
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p)
    return true
  } catch {
    return false
  }
}

/** Writes one value; one write(2), as the kernel expects of control files. */
export async function writeValue(file: string, value: string, hint?: string): Promise<void> {
  try {
    await fs.writeFile(file, value)
  } catch (err) {
    throw writeError(file, value, err, hint)
  }
}

/** How a limit is written: {@link writeValue}, or {@link writeFresh} into a cgroup just made. */
export type LimitWriter = (file: string, value: string, hint?: string) => Promise<void>

/**
 * {@link writeValue}, synchronously: for the memory, pids and cpu limits of a cgroup made a
 * moment ago. Their handlers take no cgroup-wide lock, and an empty cgroup has nothing to
 * reclaim or throttle, so the write is a few microseconds of kernel work — where an fs.promises
 * write is three thread-pool trips. Not for cpuset files (a write rebuilds scheduling domains:
 * milliseconds) nor for a cgroup in use (lowering its memory limit reclaims first).
 */
export async function writeFresh(file: string, value: string, hint?: string): Promise<void> {
  try {
    fsSync.writeFileSync(file, value)
  } catch (err) {
    throw writeError(file, value, err, hint)
  }
}

function writeError(file: string, value: string, err: unknown, hint?: string): CgroupError {
  const code = errnoOf(err)
  const kind = code === 'ENOENT' ? 'ERR_CGROUP_CONTROLLER_MISSING' : code === 'EBUSY' ? 'ERR_CGROUP_BUSY' : code === 'EINVAL' || code === 'ERANGE' ? 'ERR_CGROUP_INVALID' : 'ERR_CGROUP_IO'
  return new CgroupError(kind, `write ${JSON.stringify(value)} to ${file}: ${code ?? String(err)}`, {
    path: file,
    cause: err,
    ...(hint ? { hint } : {}),
    ...(code ? { errnoCode: code } : {}),
  })
}

/** Parses "key value" lines (memory.stat, cpu.stat, memory.events …) into numbers. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/)
    if (k && v !== undefined && /^-?\d+$/.test(v)) out[k] = Number(v)
  }
  return out
}

/** Pids listed in a cgroup.procs file. */
export async function readPids(file: string): Promise<number[]> {
  return (await readText(file))
    .split('\n')
    .filter(Boolean)
    .map(Number)
}
