/**
 * System prerequisites (Debian packages) and the bookkeeping that makes every process and
 * temporary directory the harness creates go away with the test process.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { isMainThread } from 'node:worker_threads'

const execFileP = promisify(execFile)

/** Paths of the programs the harness runs. */
export const Tools = {
  /** Debian's `docker-registry` (distribution 2.8). */
  registry: '/usr/bin/docker-registry',
  /** Debian's `skopeo`. */
  skopeo: '/usr/bin/skopeo',
  /** The `zstd` CLI (Node 20 has no zstd in `node:zlib`). */
  zstd: '/usr/bin/zstd',
  /** The `openssl` CLI, for the test CA and certificates. */
  openssl: '/usr/bin/openssl',
  /** The static busybox from Debian's `busybox-static`. */
  busybox: '/bin/busybox',
} as const

/** A program the harness needs. */
export type ToolName = keyof typeof Tools

const PACKAGE_OF: Record<ToolName, string> = {
  registry: 'docker-registry',
  skopeo: 'skopeo',
  zstd: 'zstd',
  openssl: 'openssl',
  busybox: 'busybox-static',
}

/** Thrown when a prerequisite is missing and cannot be installed, or a command fails. */
export class HarnessError extends Error {
  /** Always `ERR_CTR_HARNESS`. */
  readonly code = 'ERR_CTR_HARNESS'
  override readonly name = 'HarnessError'
}

async function isStaticBusybox(): Promise<boolean> {
  if (!existsSync(Tools.busybox)) return false
  // Debian's dynamic `busybox` package also installs /bin/busybox: require busybox-static.
  try {
    const { stdout } = await execFileP('dpkg-query', ['-W', '-f=${Status}', 'busybox-static'])
    return stdout.includes('install ok installed')
  } catch (err) {
    // No dpkg (not Debian): trust the file.
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
  }
}

async function missing(tools: readonly ToolName[]): Promise<ToolName[]> {
  const out: ToolName[] = []
  for (const t of tools) {
    const ok = t === 'busybox' ? await isStaticBusybox() : existsSync(Tools[t])
    if (!ok) out.push(t)
  }
  return out
}

const ensured = new Map<string, Promise<void>>()

/**
 * Makes sure the Debian packages behind `tools` are installed (all of them by default):
 * `docker-registry`, `skopeo`, `zstd`, `openssl` and `busybox-static`. When one is missing it
 * runs `apt-get update` then `apt-get install -y --no-install-recommends …` (as root, under a
 * `flock` so parallel test workers do not fight over dpkg's lock). Memoised per process.
 *
 * @example
 * ```ts
 * await ensureTools()              // everything
 * await ensureTools(['skopeo'])    // just skopeo
 * ```
 */
export function ensureTools(tools: readonly ToolName[] = Object.keys(Tools) as ToolName[]): Promise<void> {
  const key = [...tools].sort().join(',')
  let p = ensured.get(key)
  if (p === undefined) {
    p = installMissing(tools)
    ensured.set(key, p)
    p.catch(() => ensured.delete(key))
  }
  return p
}

async function installMissing(tools: readonly ToolName[]): Promise<void> {
  const need = await missing(tools)
  if (need.length === 0) return
  const packages = [...new Set(need.map((t) => PACKAGE_OF[t]))]
  if (process.getuid?.() !== 0) {
    throw new HarnessError(`missing ${packages.join(', ')}: install as root with apt-get install -y ${packages.join(' ')}`)
  }
  const script =
    'set -e; export DEBIAN_FRONTEND=noninteractive; ' +
    'apt-get update -qq; ' +
    `apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 ${packages.join(' ')}`
  const lock = path.join(existsSync('/run/lock') ? '/run/lock' : os.tmpdir(), 'ctr-registry-harness-apt.lock')
  try {
    await execFileP('flock', [lock, 'sh', '-c', script], { maxBuffer: 64 * 1024 * 1024 })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new HarnessError(`apt-get install ${packages.join(' ')} failed: ${e.stderr?.trim() || e.message}`)
  }
  const still = await missing(tools)
  if (still.length > 0) throw new HarnessError(`still missing after apt-get install: ${still.map((t) => Tools[t]).join(', ')}`)
}

/**
 * Runs a program and returns its output; rejects with a {@link HarnessError} carrying the
 * command line and stderr.
 *
 * @example
 * ```ts
 * const { stdout } = await run('openssl', ['version'])
 * ```
 */
export async function run(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: Buffer | string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd,
        maxBuffer: 256 * 1024 * 1024,
        timeout: options.timeoutMs ?? 0,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          reject(new HarnessError(`${file} ${args.join(' ')} failed (${err.code ?? err.signal ?? '?'}): ${String(stderr).trim() || err.message}`))
        } else {
          resolve({ stdout: String(stdout), stderr: String(stderr) })
        }
      },
    )
    if (options.input !== undefined) child.stdin?.end(options.input)
    else child.stdin?.end()
  })
}

// ---------------------------------------------------------------------------------------------
// Cleanup of what this process started.

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let hooked = false

function cleanupNow(): void {
  for (const child of children) {
    // Only the processes this harness spawned, by their own pid.
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL')
      } catch {
        /* already gone */
      }
    }
  }
  children.clear()
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear()
}

function hookExit(): void {
  if (hooked) return
  hooked = true
  process.once('exit', cleanupNow)
  // Test runners end their workers with SIGTERM (vitest's forks pool does), and a signal
  // ends the process without an 'exit' event. Clean up, then let the signal do what it would
  // have done: re-raise it when no one else listens. Signals reach the main thread only.
  if (isMainThread) {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(signal, () => {
        cleanupNow()
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      })
    }
  }
}

/**
 * Creates a temporary directory that is removed when the process exits (or earlier with
 * {@link removeTempDir}).
 *
 * @example
 * ```ts
 * const dir = makeTempDir('fixtures-')
 * ```
 */
export function makeTempDir(prefix: string): string {
  hookExit()
  const dir = mkdtempSync(path.join(os.tmpdir(), `ctr-harness-${prefix}`))
  tempDirs.add(dir)
  return dir
}

/**
 * Removes a directory made by {@link makeTempDir} now.
 *
 * @example
 * ```ts
 * removeTempDir(dir)
 * ```
 */
export function removeTempDir(dir: string): void {
  tempDirs.delete(dir)
  rmSync(dir, { recursive: true, force: true })
}

const SETPRIV = '/usr/bin/setpriv'

/**
 * Spawns a long-running program that is killed when this process exits: it is tracked for the
 * `exit` hook and, where util-linux's `setpriv` exists, started with a parent-death signal so
 * that it dies even if this process is killed with SIGKILL. `setpriv` execs the program, so the
 * child's pid is the program's own.
 * @internal
 */
export function spawnManaged(file: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  hookExit()
  const useSetpriv = existsSync(SETPRIV)
  const child = useSetpriv
    ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args], options)
    : spawn(file, args, options)
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/**
 * Stops a child spawned by {@link spawnManaged}: SIGTERM, then SIGKILL after `graceMs`.
 * @internal
 */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }, graceMs)
  await exited
  clearTimeout(timer)
}

/**
 * An environment with nothing but `PATH`, `HOME` and what is given: for programs that read
 * configuration from the environment (the registry reads every `REGISTRY_*` variable).
 * @internal
 */
export function cleanEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: home }
  for (const [k, v] of Object.entries(extra)) env[k] = v
  return env
}
