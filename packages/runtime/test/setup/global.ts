/**
 * Global setup of the @ctr/runtime suite (runs once, in the main vitest process): builds
 * ctr-init with native/init/build.sh and the syscall probe of the seccomp tests (both
 * static) into a temporary directory, removed after the run.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** A static ctr-init built from native/init. */
    ctrInit: string
    /** A static syscall probe (test/fixtures/syscall-probe.c). */
    syscallProbe: string
  }
}

const HERE = path.dirname(fileURLToPath(import.meta.url))
const REPO = path.resolve(HERE, '../../../..')

export default function setup(project: TestProject): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-runtime-build-'))
  try {
    const ctrInit = path.join(dir, 'ctr-init')
    execFileSync('sh', [path.join(REPO, 'native/init/build.sh'), ctrInit], { stdio: ['ignore', 'ignore', 'inherit'] })
    const probe = path.join(dir, 'syscall-probe')
    execFileSync('cc', ['-static', '-Os', '-Wall', '-o', probe, path.join(HERE, '../fixtures/syscall-probe.c')], { stdio: 'inherit' })
    project.provide('ctrInit', ctrInit)
    project.provide('syscallProbe', probe)
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return () => fs.rmSync(dir, { recursive: true, force: true })
}
