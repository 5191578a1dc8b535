/**
 * Global setup of the @ctr/cgroups suite (runs in the main vitest process).
 *
 * Before the run: picks the run id every test cgroup name carries (`ctr-test-<run id>-…`),
 * records the ctr-test-* directories already present under the cgroup mounts, and creates
 * the pid log every spawned child is written to.
 *
 * After the run (hygiene, asserted): no directory named ctr-test-<run id>-* under any cgroup
 * mount (walked to depth 6 below /sys/fs/cgroup; new ctr-test-* directories of other, concurrent
 * runs are reported as a warning), no process left in a cgroup of this run,
 * and no child recorded in the pid log still alive. What it finds it reports, then removes
 * (kills only processes this suite started; removes only directories of this run).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestProject } from 'vitest/node'
import { procStat, processesInCgroupsMatching, stillSame, testCgroupDirs, waitFor } from '../helpers/proc.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Carried by every cgroup name of this run: `ctr-test-<runId>-…`. */
    runId: string
    /** File that every spawned child's "pid starttime" is appended to. */
    pidLog: string
  }
}

export default function setup(project: TestProject): () => Promise<void> {
  const runId = String(process.pid)
  const before = new Set(testCgroupDirs())
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-cgroups-run-'))
  const pidLog = path.join(tmp, 'pids.log')
  fs.writeFileSync(pidLog, '')
  project.provide('runId', runId)
  project.provide('pidLog', pidLog)

  return async () => {
    const problems: string[] = []
    const ours = `ctr-test-${runId}-`

    const survivors = () =>
      fs
        .readFileSync(pidLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [pid, starttime] = l.split(' ')
          const st = procStat(Number(pid))
          return st && st.starttime === starttime ? st : null
        })
        .filter((st): st is NonNullable<typeof st> => !!st && stillSame(st))
    await waitFor(() => survivors().length === 0, 3000)
    for (const st of survivors()) {
      problems.push(`spawned child ${st.pid} (${st.comm}) is still alive after the run`)
      try {
        process.kill(st.pid, 'SIGKILL') // a process this suite started
      } catch {
        // gone
      }
    }

    await waitFor(() => processesInCgroupsMatching(ours).length === 0, 3000)
    for (const p of processesInCgroupsMatching(ours)) {
      problems.push(`process left in a cgroup of this run: ${p}`)
      try {
        process.kill(Number(p.split(' ')[0]), 'SIGKILL') // only this run's cgroups hold it: started by the suite
      } catch {
        // gone
      }
    }

    const fresh = testCgroupDirs().filter((d) => !before.has(d))
    // Another run of a ctr suite (other worktree, the lead's own run) may be going on at the
    // same time: its directories carry its own run id. Only this run's count as failures.
    const left = fresh.filter((d) => d.includes(`/${ours}`))
    for (const d of left) problems.push(`cgroup directory left: ${d}`)
    const foreign = fresh.filter((d) => !d.includes(`/${ours}`))
    if (foreign.length > 0) console.warn(`ctr-test-* directories of another run (not this one's):\n  ${foreign.join('\n  ')}`)
    // clean up what this run left (deepest first), so that one failure does not poison the next run
    for (const d of [...left].sort((a, b) => b.length - a.length)) {
      await waitFor(() => {
        try {
          fs.rmdirSync(d)
          return true
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === 'ENOENT'
        }
      }, 2000, 50)
    }

    fs.rmSync(tmp, { recursive: true, force: true })
    if (problems.length > 0) {
      // vitest reports an error thrown here but still exits 0: set the exit code too
      process.exitCode = 1
      throw new Error(`hygiene check failed after the @ctr/cgroups suite:\n  ${problems.join('\n  ')}`)
    }
  }
}
