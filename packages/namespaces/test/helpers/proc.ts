/**
 * /proc, mount and fd helpers that do not load the package (the global setup uses them in
 * the main vitest process too).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Every temporary directory of these tests starts with this; the hygiene checks look below it. */
export const TEMP_PREFIX = path.join(os.tmpdir(), 'ctr-ns-test-')

export const HELPERS_DIR = path.dirname(fileURLToPath(import.meta.url))

export function tempDir(): string {
  return fs.mkdtempSync(TEMP_PREFIX)
}

// ---------------------------------------------------------------- mounts

export interface MountLine {
  line: string
  mountPoint: string
}

/** Lines of /proc/<pid>/mountinfo, with the (unescaped) mount point. */
export function mountinfo(pid: number | 'self' = 'self'): MountLine[] {
  return fs
    .readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => ({ line, mountPoint: unescapeMount(line.split(' ')[4] ?? '') }))
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Mount points below (or equal to) `dir` in the calling process's mount namespace. */
export function mountsUnder(dir: string): string[] {
  const d = dir.replace(/\/+$/, '')
  return mountinfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === d || p.startsWith(d + '/'))
}

/** Paths where a leaked container mount would land in the host namespace. */
const CONTAINER_TARGETS = ['/proc', '/sys', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/mnt']

/**
 * Mount lines present now but not in `before` that belong to these tests: under the test
 * temp dirs, or at a path a container setup mounts on.
 */
export function newMounts(before: MountLine[]): string[] {
  const seen = new Set(before.map((m) => m.line))
  return mountinfo()
    .filter((m) => !seen.has(m.line))
    .filter((m) => m.mountPoint.startsWith(TEMP_PREFIX) || CONTAINER_TARGETS.includes(m.mountPoint))
    .map((m) => m.line)
}

/**
 * Removes a test directory, but only if nothing is mounted below it: a recursive rm would
 * otherwise walk into a leaked bind mount and delete host files.
 */
export async function safeRm(dir: string | undefined): Promise<void> {
  if (!dir) return
  const mounted = mountsUnder(dir)
  if (mounted.length > 0) {
    throw new Error(`refusing to remove ${dir}: still mounted below it: ${mounted.join(', ')}`)
  }
  await fs.promises.rm(dir, { recursive: true, force: true })
}

// ---------------------------------------------------------------- processes

export { procStat, allProcesses, childrenOf, stillSame, waitFor, type ProcStat } from '@ctr/fixtures'

export function statusField(pid: number | 'self', field: string): string {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const line = text.split('\n').find((l) => l.startsWith(field + ':'))
  if (line === undefined) throw new Error(`no ${field} in /proc/${pid}/status`)
  return line.slice(field.length + 1).trim()
}

// ---------------------------------------------------------------- fds

/** fd number -> link target, for the calling process. */
export function openFds(): Map<number, string> {
  const m = new Map<number, string>()
  for (const e of fs.readdirSync('/proc/self/fd')) {
    try {
      m.set(Number(e), fs.readlinkSync(`/proc/self/fd/${e}`))
    } catch {
      // the directory fd readdir used is gone by now
    }
  }
  return m
}

export function fdCount(): number {
  return openFds().size
}

/**
 * Parses `ls -l /proc/self/fd` (busybox) into fd -> target, leaving out the directory fd
 * that ls itself opened to read /proc/self/fd (target /proc/<pid>/fd), if it shows at all.
 */
export function parseFdListing(text: string): Map<number, string> {
  const m = new Map<number, string>()
  for (const line of text.split('\n')) {
    const match = /\s(\d+) -> (.*)$/.exec(line)
    if (match && !/^\/proc\/\d+\/fd$/.test(match[2] ?? '')) m.set(Number(match[1]), match[2] ?? '')
  }
  return m
}

/** Sorted fd numbers of a {@link parseFdListing} result. */
export function fdNumbers(m: Map<number, string>): number[] {
  return [...m.keys()].sort((a, b) => a - b)
}

