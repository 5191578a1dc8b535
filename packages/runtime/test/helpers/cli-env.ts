/**
 * End-to-end harness for the `ctr` command: the built CLI (`node dist/cli/main.js`) run as a
 * separate process with a temporary image store, state directory, Docker config directory
 * and cgroup parent, on the busybox image of `@ctr/registry-harness`'s fixtures (an OCI layout
 * built offline from Debian's busybox-static).
 *
 * Hygiene is checked, not hoped for: {@link CliEnv.leftovers} lists containers, monitor
 * processes, cgroups and mounts the commands left, and {@link CliEnv.dispose} cleans up and
 * reports what it had to clean.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { detect } from '@ctr/cgroups'
import { sharedFixtures } from '@ctr/registry-harness'

const HERE = path.dirname(fileURLToPath(import.meta.url))
export const PACKAGE = path.resolve(HERE, '../..')
export const CLI = path.join(PACKAGE, 'dist/cli/main.js')

/**
 * The tests run the built CLI: refuse a dist/cli or dist/monitor older than its sources (a
 * forgotten build), and warn when other sources of the package changed after the build.
 */
export function assertBuilt(): void {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: build first (pnpm --filter @ctr/runtime build)`)
  const newest = (dir: string): { file: string; t: number } => {
    let best = { file: '', t: 0 }
    for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || !e.name.endsWith('.ts')) continue
      const file = path.join(e.parentPath, e.name)
      const t = fs.statSync(file).mtimeMs
      if (t > best.t) best = { file, t }
    }
    return best
  }
  const built = Math.min(fs.statSync(CLI).mtimeMs, fs.statSync(path.join(PACKAGE, 'dist/monitor/main.js')).mtimeMs)
  for (const d of ['cli', 'monitor']) {
    const n = newest(path.join(PACKAGE, 'src', d))
    if (n.t > built + 1000) throw new Error(`${n.file} is newer than dist/: rebuild first (pnpm --filter @ctr/runtime build)`)
  }
  const other = newest(path.join(PACKAGE, 'src'))
  if (other.t > built + 1000) console.warn(`warning: ${other.file} changed after the last build; the CLI runs the built code`)
}

export interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface CtrOptions {
  /** Data for stdin (default: none, stdin is /dev/null). */
  input?: string
  env?: Record<string, string>
  timeoutMs?: number
  /** Extra global flags (before the command). */
  globals?: string[]
}

export interface CliEnv {
  dir: string
  root: string
  state: string
  /** $DOCKER_CONFIG of every command. */
  dockerConfig: string
  /** The cgroup parent every `ctr run` of this env uses (so leftovers are ours only). */
  cgroupParent: string
  /** `oci:<layout>:<ref>` of the busybox fixture. */
  image: string
  /** The global flags every command gets: `--root`, `--state`. */
  globals: string[]
  /** Runs `ctr <args>` (with `--cgroup-parent` added to `run`) and collects its output. */
  ctr(args: string[], o?: CtrOptions): Promise<Result>
  /** Like ctr(), but throws unless it exits with status 0. */
  ok(args: string[], o?: CtrOptions): Promise<string>
  /** The argv of `node ctr … <args>`, for callers that spawn it themselves. */
  argv(args: string[]): string[]
  /** What is left: container states, live monitors, our cgroups, mounts under our dirs. */
  leftovers(): Promise<{ states: string[]; monitors: number[]; cgroups: string[]; mounts: string[] }>
  /** Force-removes everything, kills stray monitors; returns what had to be cleaned. */
  dispose(): Promise<Awaited<ReturnType<CliEnv['leftovers']>>>
}

function withCgroupParent(args: string[], parent: string): string[] {
  return args[0] === 'run' ? ['run', '--cgroup-parent', parent, ...args.slice(1)] : args
}

/** Processes whose command line mentions `needle` (the monitors name their state directory). */
export function processesMentioning(needle: string): number[] {
  const out: number[] = []
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8')
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8')
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue
      if (cmd.includes(needle)) out.push(Number(p))
    } catch {
      /* gone */
    }
  }
  return out
}

export async function cgroupDirs(parent: string): Promise<string[]> {
  const host = await detect()
  const dirs = [...(host.unified ? [path.join(host.unified.mount, host.unified.own, parent)] : []), ...host.legacy.map((h) => path.join(h.mount, h.own, parent))]
  return [...new Set(dirs)].filter((d) => fs.existsSync(d))
}

export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
}

/** Spawns `node` with these arguments and collects the result. */
export function runNode(argv: string[], o: CtrOptions & { cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...o.env },
      ...(o.cwd ? { cwd: o.cwd } : {}),
    })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    if (o.input !== undefined) child.stdin!.end(o.input)
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out: node ${argv.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, o.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

export async function makeCliEnv(): Promise<CliEnv> {
  assertBuilt()
  const fixtures = await sharedFixtures()
  const bb = fixtures.images.busybox
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-cli-'))
  const root = path.join(dir, 'root')
  const state = path.join(dir, 'state')
  const dockerConfig = path.join(dir, 'docker')
  const cgroupParent = `ctr-cli-test-${randomBytes(4).toString('hex')}`
  const globals = ['--root', root, '--state', state]
  const argv = (args: string[], extraGlobals: string[] = []) => [CLI, ...globals, ...extraGlobals, ...withCgroupParent(args, cgroupParent)]
  const ctr = (args: string[], o: CtrOptions = {}) => runNode(argv(args, o.globals), { ...o, env: { DOCKER_CONFIG: dockerConfig, ...o.env } })
  const env: CliEnv = {
    dir,
    root,
    state,
    dockerConfig,
    cgroupParent,
    image: `oci:${bb.layoutDir}:${bb.refName}`,
    globals,
    ctr,
    argv: (args) => argv(args),
    async ok(args, o) {
      const r = await ctr(args, o)
      if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
      return r.stdout
    },
    async leftovers() {
      const states = fs.existsSync(state) ? fs.readdirSync(state).filter((n) => /^[0-9a-f]{64}$/.test(n)) : []
      return { states, monitors: processesMentioning(state), cgroups: await cgroupDirs(cgroupParent), mounts: mountsUnder(dir) }
    },
    async dispose() {
      const before = await env.leftovers()
      try {
        if (before.states.length) await ctr(['rm', '-f', ...before.states]).catch(() => undefined)
        for (const pid of processesMentioning(state)) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            /* gone */
          }
        }
        const deadline = Date.now() + 5000
        while (processesMentioning(state).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
        if (fs.existsSync(state) && fs.readdirSync(state).length) await ctr(['ps', '-a']).catch(() => undefined) // cleans stale state
        for (const m of mountsUnder(dir).reverse()) await runCmd('umount', ['-l', m]).catch(() => undefined)
        for (const d of await cgroupDirs(cgroupParent)) {
          // Leftover container cgroups (empty once their processes were killed), then the parent.
          for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) fs.rmdirSync(path.join(d, e.name))
          fs.rmdirSync(d)
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
      return before
    },
  }
  return env
}

/** Runs a program, resolving with its result (no shell). */
export function runCmd(program: string, args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    if (o.input !== undefined) child.stdin!.end(o.input)
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Polls until `fn` returns a truthy value (or throws after `timeoutMs`). */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, what: string | (() => string) = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The state.json of a container, read directly. */
export function readState(env: CliEnv, id: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(env.state, id, 'state.json'), 'utf8')) as Record<string, unknown>
  } catch {
    return undefined
  }
}

/** Whether a pid is a live (non-zombie) process. */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}
