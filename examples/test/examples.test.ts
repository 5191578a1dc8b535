/**
 * The examples end to end, as a user runs them: `node dist/<name>.js` (build first), as root,
 * with the image store, container state and busybox layout in a fresh /tmp/ctr-examples-*
 * directory ($CTR_ROOT, $CTR_STATE_ROOT). After each one: no container state, no mount, no
 * container cgroup left.
 */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))
let dir: string

/** Directories below `<own cgroup>/ctr` in every hierarchy: the default runtime's containers. */
function containerCgroups(): string[] {
  const out: string[] = []
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean)) {
    const [, controllers, own] = line.split(':') as [string, string, string]
    const mount = controllers === '' ? 'unified' : controllers.split(',')[0]!.replace(/^name=/, '')
    const parent = path.join('/sys/fs/cgroup', mount, own, 'ctr')
    try {
      for (const e of fs.readdirSync(parent, { withFileTypes: true })) if (e.isDirectory()) out.push(path.join(parent, e.name))
    } catch {
      /* no ctr parent (yet) in this hierarchy */
    }
  }
  return out
}
let cgroupsBefore = new Set<string>()

async function example(name: string, ...args: string[]): Promise<string> {
  const env = { ...process.env, CTR_ROOT: path.join(dir, 'root'), CTR_STATE_ROOT: path.join(dir, 'run') }
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(dist, `${name}.js`), ...args], { env, timeout: 100_000 })
    return stdout
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${name} ${args.join(' ')} failed: ${e.message}\nstdout: ${e.stdout}\nstderr: ${e.stderr}`)
  }
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('the examples need root')
  if (!fs.existsSync(path.join(dist, 'hello.js'))) throw new Error(`${dist} is not built: corepack pnpm --filter @ctr/examples... build`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-examples-'))
  cgroupsBefore = new Set(containerCgroups())
})

afterEach(() => {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir))
  expect(mounts, 'mounts left').toEqual([])
  // One directory per container (64 hex digits); `.names/` holds the name reservations.
  const states = fs.existsSync(path.join(dir, 'run')) ? fs.readdirSync(path.join(dir, 'run')).filter((n) => /^[0-9a-f]{64}$/.test(n)) : []
  expect(states, 'container state left').toEqual([])
  const names = path.join(dir, 'run', '.names')
  expect(fs.existsSync(names) ? fs.readdirSync(names) : [], 'container names left').toEqual([])
  expect(containerCgroups().filter((c) => !cgroupsBefore.has(c)), 'container cgroups left').toEqual([])
})

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

describe('examples', () => {
  it('hello: echo in a busybox container built offline, with the result fields', async () => {
    const out = await example('hello')
    expect(out).toMatch(/^hello from a container: [0-9a-f]{12}, pid 1$/m)
    expect(out).toMatch(/^image {8}oci:.*\/busybox-[0-9a-f]{12}:busybox:latest$/m)
    expect(out).toMatch(/^exit code {4}0, oomKilled false, timedOut false$/m)
    expect(out).toMatch(/^timings {6}create [\d.]+ ms, run [\d.]+ ms, cleanup [\d.]+ ms, total [\d.]+ ms$/m)
    // The layout is cached: a second run builds nothing and gets the same image.
    const again = await example('hello')
    expect(again.match(/^image .*$/m)![0]).toBe(out.match(/^image .*$/m)![0])
  })

  it('limits: the memory hog is OOM-killed, the fork bomb stays within pids, the loop gets a quarter CPU', async () => {
    const out = await example('limits')
    // The kernel picks the OOM victim: usually the hog (`tail`), and the shell exits 137; now and
    // then the shell itself, PID 1, and the whole container ends by SIGKILL. Both are the OOM kill.
    expect(out).toMatch(/oomKilled true, (exit code 137, signal null|exit code null, signal SIGKILL), peak memory [1-3]\d\.\d MiB/)
    const most = Number(/at most (\d+) processes/.exec(out)?.[1])
    expect(most).toBeGreaterThan(2)
    expect(most).toBeLessThanOrEqual(32)
    const share = Number(/: (\d+)% of one CPU/.exec(out)?.[1])
    expect(out).toMatch(/timedOut true/)
    expect(share).toBeGreaterThan(5)
    expect(share).toBeLessThan(40)
  })

  it('exec: ps, files, pause and resume, stats, top, stop, log and events', async () => {
    const out = await example('exec')
    expect(out).toMatch(/^ +1 root +sh -c trap/m)
    expect(out).toMatch(/exec cat \/tmp\/note: written by one exec \(exit code 0\)/)
    expect(out).toMatch(/exec test -e \/etc\/shadow: exit code 1/)
    const [, a, b] = /paused: counter (\d+) -> (\d+)/.exec(out)!
    expect(Number(b)).toBe(Number(a))
    const [, c, d] = /resumed: counter (\d+) -> (\d+)/.exec(out)!
    expect(Number(d)).toBeGreaterThan(Number(c))
    expect(out).toMatch(/stopped: exit code 0, signal null/)
    expect(out).toMatch(/log: stdout: started, stdout: bye/)
    expect(out).toMatch(/events: start, pause, resume, exit, delete/)
  })

  it('code-runner --self-test: output, a fork bomb, a timeout, an OOM kill and a 400', async () => {
    const out = await example('code-runner', '--self-test')
    const line = (name: string) => out.split('\n').find((l) => l.startsWith(`${name}: `)) ?? ''
    expect(line('hello')).toMatch(/HTTP 200 stdout="hello, world\\nnobody\\n" stderr="" exitCode=0 /)
    // The bomb hits the pids limit ("can't fork", interleaved from many shells) and the
    // shell that started it still prints.
    expect(line('fork bomb')).toMatch(/HTTP 200 stdout="survived\\n" stderr="(sh: )+/)
    expect(line('fork bomb')).toMatch(/timedOut=false oomKilled=false/)
    expect(line('infinite loop')).toMatch(/HTTP 200 .*signal="SIGKILL" timedOut=true oomKilled=false/)
    expect(line('memory hog')).toMatch(/HTTP 200 .*oomKilled=true/)
    expect(line('bad request')).toMatch(/HTTP 400 error=.* field="language"/)
  })

  it('commit-and-push --local: commit, push to a local docker-registry, pull into a fresh store, run', async () => {
    const out = await example('commit-and-push', '--local')
    expect(out).toMatch(/^started docker-registry on 127\.0\.0\.1:\d+$/m)
    expect(out).toMatch(/^committed 127\.0\.0\.1:\d+\/examples\/greeting:v1: sha256:[0-9a-f]{64}/m)
    expect(out).toMatch(/^pushed .*\(3 blobs uploaded, 0 already there\)$/m)
    expect(out).toMatch(/^pulled and ran .* in a fresh store: made in container [0-9a-f]{12} \(exit code 0\)$/m)
  })
})
