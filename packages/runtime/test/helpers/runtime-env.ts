/**
 * A throwaway runtime for end-to-end tests: an image store and a state directory in a fresh
 * /tmp/ctr-rt-* directory, a cgroup parent of its own, and the busybox fixture image (built
 * offline from Debian's busybox-static) imported from an OCI layout. `dispose()` checks that
 * nothing is left — no container state, no snapshot mount, no cgroup — then removes it all.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { detect } from '@ctr/cgroups'
import { sharedFixtures } from '@ctr/registry-harness'
import { Runtime } from '../../src/index.js'

export interface RuntimeEnv {
  dir: string
  runtime: Runtime
  /** `oci:<layout>:<ref name>` of the busybox image. */
  image: string
  /** The cgroup parent, unique to this env. */
  cgroupParent: string
  /** Directories this env's cgroups live in (one per hierarchy), for leak checks. */
  cgroupDirs(): Promise<string[]>
  /** Mount points under the env's directory. */
  mounts(): string[]
  dispose(): Promise<void>
}

export async function makeRuntimeEnv(): Promise<RuntimeEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-rt-'))
  const cgroupParent = `ctr-test-${path.basename(dir).slice(-6)}`
  const fixtures = await sharedFixtures()
  const bb = fixtures.images.busybox
  const runtime = await Runtime.open({ root: path.join(dir, 'store'), stateRoot: path.join(dir, 'run'), cgroupParent, fsync: false })
  const image = `oci:${bb.layoutDir}:${bb.refName}`
  const host = await detect()
  const cgroupDirs = async () => {
    const bases = [
      ...(host.unified ? [path.join(host.unified.mount, host.unified.own, cgroupParent)] : []),
      ...host.legacy.map((h) => path.join(h.mount, h.own, cgroupParent)),
    ]
    const out: string[] = []
    for (const b of bases) {
      try {
        for (const e of fs.readdirSync(b, { withFileTypes: true })) if (e.isDirectory()) out.push(path.join(b, e.name))
      } catch {
        /* the parent does not exist (yet) */
      }
    }
    return out
  }
  const mounts = () =>
    fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[4]!).filter((m) => m.startsWith(dir))
  return {
    dir, runtime, image, cgroupParent, cgroupDirs, mounts,
    async dispose() {
      // Background removals finish, and the cgroup parent goes if empty.
      const closed = await runtime.close().then(() => undefined, (err: unknown) => err)
      const leftovers = { states: (await runtime.list()).map((s) => s.id), mounts: mounts(), cgroups: await cgroupDirs() }
      // Remove the parent cgroups, then the files, whatever the check says.
      for (const b of [
        ...(host.unified ? [path.join(host.unified.mount, host.unified.own, cgroupParent)] : []),
        ...host.legacy.map((h) => path.join(h.mount, h.own, cgroupParent)),
      ]) {
        try { fs.rmdirSync(b) } catch { /* absent or still busy: reported below */ }
      }
      for (const m of mounts().reverse()) {
        try { (await import('@ctr/native')).umount2(m, 2) } catch { /* reported below */ }
      }
      fs.rmSync(dir, { recursive: true, force: true })
      if (closed) throw closed
      if (leftovers.states.length || leftovers.mounts.length || leftovers.cgroups.length) {
        throw new Error(`runtime env left things behind: ${JSON.stringify(leftovers)}`)
      }
    },
  }
}
