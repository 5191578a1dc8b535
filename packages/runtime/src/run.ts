/**
 * `run()`: `docker run --rm` as a function. Create, start, feed stdin, collect or stream
 * output, wait (with a timeout and an AbortSignal that kill the whole container), gather
 * usage, and delete — also when anything fails on the way.
 */
import { Writable, type Readable } from 'node:stream'
import type { Container, ExitInfo } from './container/container.js'
import { RuntimeError } from './errors.js'
import { parseOptions, runSchema } from './options/schema.js'
import { getDefaultRuntime, type Runtime } from './runtime.js'

/** Options of {@link run}: those of `create()`, plus I/O, a timeout and removal. */
export interface RunOptions {
  image: string
  pull?: 'missing' | 'always' | 'never'
  platform?: string
  name?: string
  cmd?: string[]
  entrypoint?: string[] | string
  env?: Record<string, string> | string[]
  workdir?: string
  user?: string
  hostname?: string
  /** Hard memory limit: bytes or `'64m'`, `'1g'`. */
  memory?: string | number
  /** Memory plus swap (`--memory-swap`); -1 for unlimited swap. */
  memorySwap?: string | number
  /** CPUs, fractional (`1.5`): a CFS quota. */
  cpus?: number
  /** Maximum number of processes (fork-bomb guard). */
  pids?: number
  /** Block-I/O weight, 1–10000. */
  ioWeight?: number
  mounts?: (
    | { type: 'bind'; source: string; target: string; readonly?: boolean }
    | { type: 'tmpfs'; target: string; size?: string | number; mode?: number }
    | { type: 'volume'; name: string; target: string; readonly?: boolean }
  )[]
  /** Read-only root file system. */
  readonly?: boolean
  /**
   * `none` (default): its own network namespace with `lo` up; `host`: the host's network;
   * `bridge` (the default network, made on first use) or the name of a {@link Network}.
   */
  network?: 'none' | 'host' | 'bridge' | (string & {})
  /** Name servers for /etc/resolv.conf on a bridge network (default the host's, minus loopback ones). */
  dns?: string[]
  /**
   * Published ports: `'8080:80'`, `'127.0.0.1:5353:53/udp'`, `'[::1]:8080:80'`, or objects. Without
   * a host address a port listens on every IPv4 and IPv6 address of the host, as Docker's does.
   */
  publish?: (string | { hostPort: number; containerPort: number; protocol?: 'tcp' | 'udp'; hostIp?: string })[]
  tty?: boolean
  /** A tiny PID 1 that reaps zombies and forwards signals. */
  init?: boolean
  capAdd?: string[]
  capDrop?: string[]
  privileged?: boolean
  /** `'default'` (Docker's profile), `'unconfined'`, or a profile object in Docker's format. */
  seccomp?: 'default' | 'unconfined' | Record<string, unknown>
  labels?: Record<string, string>
  ulimits?: Record<string, { soft: number; hard: number }>
  /** Data for stdin. Without it stdin is /dev/null. */
  stdin?: string | Uint8Array | Readable
  /** `'capture'` (default): `result.stdout`; `'inherit'`; `'ignore'`; or a stream to write to. */
  stdout?: 'capture' | 'inherit' | 'ignore' | Writable
  stderr?: 'capture' | 'inherit' | 'ignore' | Writable
  /** Milliseconds until the whole container is killed (`timedOut` is then true). */
  timeout?: number
  signal?: AbortSignal
  /**
   * Delete the container when done (default true). `run()` resolves as soon as the exit and
   * usage are known: the name is free at once, and the cgroup, snapshot and state go right
   * after in the background — `await runtime.idle()` (or `runtime.close()`) waits for them.
   */
  remove?: boolean
  /** With `remove`: resolve only once the container is gone (as `docker run --rm` does). */
  waitForRemoval?: boolean
  /** Progress of an image pull. */
  onPullProgress?: (p: unknown) => void
  /** The runtime to use; default {@link getDefaultRuntime}. */
  runtime?: Runtime
}

/** What {@link run} returns. */
export interface RunResult extends ExitInfo {
  id: string
  name: string
  /** Whether the timeout killed it. */
  timedOut: boolean
  /** Whether the AbortSignal killed it. */
  aborted: boolean
  stdout: string
  stderr: string
  usage: {
    /** Peak memory of the container's cgroup, in bytes. */
    memoryPeak?: number
    /** CPU time of every process in the container, µs. */
    cpuUsec: number
    cpuUserUsec: number
    cpuSystemUsec: number
  }
  /** Milliseconds spent: preparing (image, snapshot, cgroup), running, cleaning up; and in all. */
  timings: { create: number; run: number; cleanup: number; total: number }
}

/** Collects a stream's text when capturing. */
class Collector extends Writable {
  chunks: Buffer[] = []
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk)
    cb()
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }
}

/**
 * Runs a command in a new container and returns how it ended, with its output.
 *
 * @example
 * ```ts
 * import { run } from '@ctr/runtime'
 * const r = await run({ image: 'busybox:latest', cmd: ['sh', '-c', 'echo hi; exit 3'],
 *                       memory: '64m', pids: 64, network: 'none' })
 * // r.exitCode === 3, r.stdout === 'hi\n'
 * ```
 */
export async function run(options: RunOptions): Promise<RunResult> {
  const t0 = performance.now()
  const { runtime: given, onPullProgress, ...rest } = options
  const o = parseOptions(runSchema, rest)
  const { stdin, stdout = 'capture', stderr = 'capture', timeout, signal, remove = true, waitForRemoval = false, ...createOptions } = o
  signal?.throwIfAborted()
  const runtime = given ?? (await getDefaultRuntime())
  const container = await runtime.createParsed(createOptions, {
    ...(onPullProgress ? { onPullProgress } : {}), ...(signal ? { signal } : {}), ...(remove ? { autoRemove: true } : {}),
  })
  const tCreated = performance.now()
  let timedOut = false
  let aborted = false
  let timer: NodeJS.Timeout | undefined
  const onAbort = () => {
    aborted = true
    void container.kill('SIGKILL')
  }
  const out = stdout === 'capture' ? new Collector() : undefined
  const err = stderr === 'capture' ? new Collector() : undefined
  let exit: ExitInfo
  let tRan: number
  let usage: RunResult['usage'] = { cpuUsec: 0, cpuUserUsec: 0, cpuSystemUsec: 0 }
  try {
    await container.start({
      ...(stdin !== undefined ? { stdin } : {}),
      stdout: out ?? mode(stdout),
      stderr: err ?? mode(stderr),
    })
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        timedOut = true
        void container.kill('SIGKILL')
      }, timeout)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) onAbort()
    exit = await container.wait()
    tRan = performance.now()
    usage = await usageOf(container)
  } catch (e) {
    if (remove) await deleteQuietly(runtime, container)
    throw e
  } finally {
    if (timer) clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
  if (remove && waitForRemoval) {
    await container.delete({ force: true })
    runtime.forget(container.id)
  } else if (remove) {
    await runtime.removeInBackground(container)
  }
  const tEnd = performance.now()
  return {
    id: container.id,
    name: container.name,
    ...exit,
    timedOut,
    aborted,
    stdout: out?.text() ?? '',
    stderr: err?.text() ?? '',
    usage,
    timings: { create: tCreated - t0, run: tRan - tCreated, cleanup: tEnd - tRan, total: tEnd - t0 },
  }
}

function mode(m: 'capture' | 'inherit' | 'ignore' | Writable): 'inherit' | 'ignore' | Writable {
  return m === 'capture' ? 'ignore' : m
}

async function usageOf(c: Container): Promise<RunResult['usage']> {
  try {
    // Only what the result reports: two or three cgroup files, not the dozen of stats().
    const u = await c.cgroup.usage()
    return {
      ...(u.memoryPeak !== undefined ? { memoryPeak: u.memoryPeak } : {}),
      cpuUsec: u.cpu.usageUsec,
      cpuUserUsec: u.cpu.userUsec,
      cpuSystemUsec: u.cpu.systemUsec,
    }
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_STATE', `read the usage of container ${c.name}: ${(err as Error).message}`, { cause: err })
  }
}

async function deleteQuietly(runtime: Runtime, c: Container): Promise<void> {
  await c.delete({ force: true }).catch(() => {})
  runtime.forget(c.id)
}
