/**
 * /proc and cgroupfs helpers that do not load the package under test (the global setup uses
 * them in the main vitest process too).
 */
import fs from 'node:fs'
import path from 'node:path'

export const CGROUP_ROOT = '/sys/fs/cgroup'

/** Every cgroup these tests create has a name starting with this. */
export const TEST_PREFIX = 'ctr-test-'

import { allProcesses } from '@ctr/fixtures'
export { procStat, allProcesses, childrenOf, stillSame, waitFor, type ProcStat } from '@ctr/fixtures'

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// ---------------------------------------------------------------- cgroupfs

export interface CgroupMount {
  mountPoint: string
  fstype: 'cgroup' | 'cgroup2'
  root: string
  superOptions: string[]
}

/** Every cgroup and cgroup2 mount of our mount namespace. */
export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = []
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (sep < 0) continue
    const fstype = f[sep + 1]
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue
    out.push({ mountPoint: f[4]!, fstype, root: f[3]!, superOptions: (f[sep + 3] ?? '').split(',') })
  }
  return out
}

/** Lines of /proc/<pid>/cgroup (or of a text in that format): hierarchy controllers → path. */
export function parseProcCgroup(text: string): { id: string; controllers: string[]; path: string }[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const a = line.indexOf(':')
      const b = line.indexOf(':', a + 1)
      const c = line.slice(a + 1, b)
      return { id: line.slice(0, a), controllers: c === '' ? [] : c.split(','), path: line.slice(b + 1) }
    })
}

/**
 * The path of the process (or text) in the hierarchy that holds `controller`, or in the v2
 * hierarchy for `null`.
 */
export function cgroupPathIn(text: string, controller: string | null): string | undefined {
  for (const l of parseProcCgroup(text)) {
    if (controller === null ? l.id === '0' && l.controllers.length === 0 : l.controllers.includes(controller)) return l.path
  }
  return undefined
}

/** Every directory below `dir` (not `dir` itself), at most `depth` levels down. */
export function dirsUnder(dir: string, depth: number): string[] {
  const out: string[] = []
  const walk = (d: string, left: number) => {
    if (left === 0) return
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(d, { withFileTypes: true })
    } catch {
      return // removed meanwhile
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue
      const p = path.join(d, e.name)
      out.push(p)
      walk(p, left - 1)
    }
  }
  walk(dir, depth)
  return out
}

/** Directories named ctr-test-* under every cgroup mount (to depth 6 below /sys/fs/cgroup). */
export function testCgroupDirs(prefix = TEST_PREFIX): string[] {
  const found = new Set<string>()
  for (const m of cgroupMounts()) {
    if (!m.mountPoint.startsWith(CGROUP_ROOT)) continue
    const depth = Math.max(1, 6 - (m.mountPoint.split('/').length - CGROUP_ROOT.split('/').length))
    for (const d of dirsUnder(m.mountPoint, depth)) if (path.basename(d).startsWith(prefix)) found.add(d)
  }
  return [...found].sort()
}

/** Pids of processes whose /proc/<pid>/cgroup names a cgroup containing `needle`. */
export function processesInCgroupsMatching(needle: string): string[] {
  const out: string[] = []
  for (const p of allProcesses()) {
    if (p.state === 'Z') continue
    let text: string
    try {
      text = fs.readFileSync(`/proc/${p.pid}/cgroup`, 'utf8')
    } catch {
      continue
    }
    if (text.includes(needle)) out.push(`${p.pid} (${p.comm})`)
  }
  return out
}
