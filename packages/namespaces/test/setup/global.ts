/**
 * Global setup of the @ctr/namespaces suite (runs in the main vitest process).
 *
 * Before the run:
 * - checks that the built package (dist/) the helper Node scripts in test/helpers/ import exists.
 * - records the mount table and creates the pid log every spawned child is written to.
 *
 * After the run (hygiene, asserted): no new mount under the test temp dirs (or at a container
 * mount target) in the host namespace, no child recorded in the pid log still alive, and no
 * process whose root or cwd lies under a test temp dir.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'
import { allProcesses, mountinfo, newMounts, procStat, stillSame, TEMP_PREFIX, waitFor } from '../helpers/proc.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The built package entry (dist/index.js) the helper scripts import. */
    nsEntry: string
    /** File that every spawned child's "pid starttime" is appended to. */
    pidLog: string
  }
}

const PKG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function processesUnderTempDirs(): string[] {
  const found: string[] = []
  for (const p of allProcesses()) {
    for (const link of ['root', 'cwd']) {
      try {
        const target = fs.readlinkSync(`/proc/${p.pid}/${link}`)
        if (target.startsWith(TEMP_PREFIX) && p.state !== 'Z') found.push(`${p.pid} (${p.comm}) ${link}=${target}`)
      } catch {
        // gone, or a kernel thread
      }
    }
  }
  return found
}

export default function setup(project: TestProject): () => Promise<void> {
  const mountsBefore = mountinfo()
  // The helper scripts are plain Node: they import the built package (turbo builds it before
  // `test`; run `pnpm build` first when calling vitest directly).
  const entry = path.join(PKG_DIR, 'dist', 'index.js')
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: build the package first (pnpm --filter @ctr/namespaces build)`)
  const buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-ns-run-'))
  const pidLog = path.join(buildDir, 'pids.log')
  fs.writeFileSync(pidLog, '')
  project.provide('nsEntry', entry)
  project.provide('pidLog', pidLog)

  return async () => {
    const problems: string[] = []

    const survivors = () =>
      fs
        .readFileSync(pidLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [pid, starttime] = l.split(' ')
          return { pid: Number(pid), starttime: starttime ?? '' }
        })
        .map((r) => procStat(r.pid) && { ...procStat(r.pid)!, starttime: r.starttime })
        .filter((st): st is NonNullable<typeof st> => !!st && stillSame(st))
    // A child killed at the very end of a file may need a moment to be reaped by init.
    await waitFor(() => survivors().length === 0, 3000)
    for (const st of survivors()) {
      problems.push(`spawned child ${st.pid} (${st.comm}) is still alive after the run`)
      try {
        process.kill(st.pid, 'SIGKILL') // a process this suite started
      } catch {
        // already gone
      }
    }

    await waitFor(() => processesUnderTempDirs().length === 0, 3000)
    for (const p of processesUnderTempDirs()) problems.push(`process left inside a test directory: ${p}`)

    for (const line of newMounts(mountsBefore)) problems.push(`mount left in the host namespace: ${line}`)

    fs.rmSync(buildDir, { recursive: true, force: true })
    if (problems.length > 0) {
      // vitest reports an error thrown here but still exits 0: set the exit code too
      process.exitCode = 1
      throw new Error(`hygiene check failed after the @ctr/namespaces suite:\n  ${problems.join('\n  ')}`)
    }
  }
}
