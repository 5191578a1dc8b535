/**
 * A container with a lifecycle: created → running ⇄ paused → exited → deleted. One object per
 * container in the process that created it (or opened it); its state is mirrored in
 * `<stateRoot>/<id>/state.json` for other processes.
 */
import { EventEmitter, on } from 'node:events'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Cgroup, CgroupStats } from '@ctr/cgroups'
import { close, openpty, setWinsize } from '@ctr/native'
import { enter, readText, spawn, type Child, type SpawnOptions, type Stdio } from '@ctr/namespaces'
import { RuntimeError } from '../errors.js'
import { oomKills } from './oom.js'
import { processStart, selfIdentity } from './process-identity.js'
import { releaseResources, type ContainerResources } from './resources.js'
import type { ContainerState } from './state.js'
import { readLogs, type LogEntry, LogWriter } from './logs.js'
import type { NetworkAttachment } from '../network/network.js'
import { noteLoopbackStart, takeLoopbackNetns } from '../network/loopback-netns.js'

/** How a container (or an exec'd process) ended. */
export interface ExitInfo {
  /** The exit code, or null when a signal ended it. */
  exitCode: number | null
  /** The signal that ended it (`'SIGKILL'`), or null. */
  signal: NodeJS.Signals | null
  /** Whether the kernel's OOM killer killed a process of the container. */
  oomKilled: boolean
}

/** What happened to a container, as {@link Container.events} yields it. */
export type ContainerEvent =
  | { type: 'start'; time: Date; pid: number }
  | { type: 'exit'; time: Date; exitCode: number | null; signal: NodeJS.Signals | null; oomKilled: boolean }
  | { type: 'oom'; time: Date }
  | { type: 'pause' | 'resume' | 'delete'; time: Date }

/** Where a started container's output goes. */
export interface StartOptions {
  /** Data for stdin: a string, bytes or a stream; without it stdin is /dev/null (unless `interactive`). */
  stdin?: string | Uint8Array | Readable
  /** `'log'` (default for create): the container log; `'pipe'`: `container.stdout`; `'inherit'`; `'ignore'`; a stream. */
  stdout?: 'log' | 'pipe' | 'inherit' | 'ignore' | Writable
  stderr?: 'log' | 'pipe' | 'inherit' | 'ignore' | Writable
}

/** A process started in a running container with {@link Container.exec}. */
export interface ExecOptions {
  env?: Record<string, string>
  workdir?: string
  /** `uid[:gid]` numbers, or a name from the image's /etc/passwd. */
  user?: string
  stdin?: string | Uint8Array | Readable
  signal?: AbortSignal
}

/** The result of {@link Container.exec}. */
export interface ExecResult {
  exitCode: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** One process of {@link Container.top}. */
export interface ProcessInfo {
  pid: number
  ppid: number
  uid: number
  state: string
  command: string
}

/** What the runtime gives a container object: its resources and how to resolve exec users. */
export interface ContainerContext {
  state: ContainerState
  resources: ContainerResources
  cgroup: Cgroup
  spawnOptions: Omit<SpawnOptions, 'stdio' | 'signal' | 'controllingTerminal'>
  save: (s: ContainerState) => Promise<void>
  resolveUser: (user: string) => Promise<{ uid: number; gid: number; groups: number[] }>
  stateDir: string
  /** Its place on a bridge network: the netns is made ready before its process runs. */
  network?: NetworkAttachment
}

/**
 * A container. Create one with `create()` (or `Runtime.create()`), then `start()` it.
 *
 * @example
 * ```ts
 * import { create } from '@ctr/runtime'
 * const c = await create({ image: 'busybox:latest', cmd: ['sleep', '60'], memory: '64m' })
 * await c.start()
 * const r = await c.exec(['ps'])          // another process in the same namespaces and cgroup
 * console.log(r.stdout, await c.stats())
 * await c.kill('SIGTERM')
 * console.log(await c.wait())             // { exitCode: null, signal: 'SIGTERM', oomKilled: false }
 * await c.delete()
 * ```
 */
export class Container {
  readonly id: string
  readonly name: string
  /** The container's stdin, when started with `stdin: 'pipe'`-like options (interactive). */
  stdin: Writable | null = null
  /** Output streams when started with `stdout: 'pipe'` / `stderr: 'pipe'`. */
  stdout: Readable | null = null
  stderr: Readable | null = null
  /** The pty master when the container has a TTY (both output streams arrive on it). */
  terminal: { columns?: number; rows?: number; resize(columns: number, rows: number): void } | null = null

  #ctx: ContainerContext
  #child: Child | undefined
  #exit: Promise<ExitInfo> | undefined
  #exitInfo: ExitInfo | undefined
  #events = new EventEmitter()
  #deleted = false
  /** The state write of start(), which start() does not wait for. */
  #startSaved: Promise<void> = Promise.resolve()
  #killedByUs: NodeJS.Signals | undefined

  /** @internal */
  constructor(ctx: ContainerContext) {
    this.#ctx = ctx
    this.id = ctx.state.id
    this.name = ctx.state.name
    this.#events.setMaxListeners(0)
  }

  /** A snapshot of the container's state (what `ctr inspect` shows). */
  get state(): ContainerState {
    return structuredClone(this.#ctx.state)
  }

  /** The host pid of the container's init, once started. */
  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** The container's cgroup (limits, stats, freezer). */
  get cgroup(): Cgroup {
    return this.#ctx.cgroup
  }

  /**
   * Starts the container's process. Resolves once it has exec'd; a failure before that (no
   * such program, a mount refused) rejects with the namespaces package's `SpawnError`, wrapped.
   */
  async start(options: StartOptions = {}): Promise<void> {
    const s = this.#ctx.state
    if (this.#deleted) throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} was deleted`)
    if (s.status !== 'created' || this.#child) {
      throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} is ${s.status}: only a created container can start`)
    }
    const tty = s.config.tty
    const stdoutMode = options.stdout ?? 'log'
    const stderrMode = options.stderr ?? 'log'
    const logging = stdoutMode === 'log' || stderrMode === 'log'
    let pty: { master: number; slave: number; path: string } | undefined
    let stdio: [Stdio, Stdio, Stdio]
    if (tty) {
      pty = openpty()
      stdio = [pty.slave, pty.slave, pty.slave]
    } else {
      const outStdio = (m: StartOptions['stdout']): Stdio => (m === 'inherit' ? 'inherit' : m === 'ignore' ? 'ignore' : 'pipe')
      stdio = [options.stdin !== undefined || this.#interactive() ? 'pipe' : 'ignore', outStdio(stdoutMode), outStdio(stderrMode)]
    }
    let child: Child
    let net: Awaited<ReturnType<NetworkAttachment['beforeStart']>> | undefined
    // On network 'none', a namespace made ahead of this start (see loopback-netns.ts), if one
    // is ready: joined instead of created by the clone.
    const base = this.#ctx.spawnOptions
    const ownNetns = this.#ctx.state.config.network === 'none' && (base.namespaces ?? []).includes('net')
    const spareNetns = ownNetns ? takeLoopbackNetns() : undefined
    if (ownNetns) noteLoopbackStart()
    try {
      net = await this.#ctx.network?.beforeStart()
      child = await spawn({
        ...base,
        ...(net ? { join: { ...base.join, net: net.netns } } : {}),
        ...(spareNetns ? { namespaces: base.namespaces!.filter((t) => t !== 'net'), join: { ...base.join, net: spareNetns.path } } : {}),
        // The pty comes from the host's devpts, which the container cannot see: bind its
        // slave onto /dev/console (as runc does) so ttyname() finds a name for it.
        ...(pty && base.rootfs
          ? { rootfs: { ...base.rootfs, mounts: [...(base.rootfs.mounts ?? []), { type: 'bind' as const, source: pty.path, target: '/dev/console' }] } }
          : {}),
        stdio,
        ...(tty ? { controllingTerminal: 0 } : {}),
      })
    } catch (err) {
      if (pty) { close(pty.master); close(pty.slave) }
      await net?.abort()
      throw new RuntimeError('ERR_RUNTIME_START', `start container ${this.name}: ${(err as Error).message}`, { cause: err })
    } finally {
      if (pty) close(pty.slave)
      // Its process runs there now (or never will): the namespace lives as long as it does.
      spareNetns?.release()
    }
    if (net) {
      try {
        await net.started()
      } catch (err) {
        child.kill('SIGKILL')
        await child.exited
        if (pty) close(pty.master)
        throw err
      }
    }
    this.#child = child
    const log = logging ? new LogWriter(path.join(this.#ctx.stateDir, 'container.log')) : undefined
    const done: Promise<unknown>[] = []
    if (pty) {
      const { ReadStream, WriteStream } = await import('node:tty')
      const master = pty.master
      const input = new ReadStream(master)
      input.on('error', () => {}) // EIO when the last slave closes: the end of output
      const output = new WriteStream(master)
      output.on('error', () => {})
      this.stdin = output
      this.terminal = { resize: (c, r) => setWinsize(master, c, r) }
      done.push(this.#route(input, stdoutMode, 'stdout', log))
    } else {
      this.stdin = child.stdin
      if (child.stdout) done.push(this.#route(child.stdout, stdoutMode, 'stdout', log))
      if (child.stderr) done.push(this.#route(child.stderr, stderrMode, 'stderr', log))
    }
    if (options.stdin !== undefined && this.stdin) feed(this.stdin, options.stdin)
    s.status = 'running'
    s.started = new Date().toISOString()
    s.process = { pid: child.pid, start: processStart(child.pid) ?? 0 }
    s.owner = selfIdentity()
    if (log) s.logPath = log.file
    // Not awaited: the program runs already, and nothing needs 'running' on disk before
    // start() returns (a crash leaves 'created', which is released the same way). The exit's
    // write and delete() wait for it, so the files are never written out of order.
    this.#startSaved = this.#ctx.save(s).catch(() => {})
    this.#emit({ type: 'start', time: new Date(), pid: child.pid })
    this.#exit = this.#finish(child, done, log, pty?.master)
    // Nobody may be waiting yet; the promise must not count as unhandled.
    this.#exit.catch(() => {})
  }

  #interactive(): boolean {
    return this.#ctx.state.config.interactive === true
  }

  /** Sends a stream where its mode says: a Writable, `container.stdout`, or the log. */
  #route(stream: Readable, mode: StartOptions['stdout'], name: 'stdout' | 'stderr', log: LogWriter | undefined): Promise<void> {
    if (mode instanceof Writable) return pipeline(stream, mode, { end: false }).catch(() => {})
    if (mode === 'pipe') {
      this[name] = stream
      return new Promise((resolve) => stream.once('close', resolve))
    }
    if (mode === 'log' && log) {
      stream.on('data', (b: Buffer) => log.write(name, b))
      return new Promise((resolve) => stream.once('close', resolve))
    }
    stream.resume()
    return new Promise((resolve) => stream.once('close', resolve))
  }

  async #finish(child: Child, streams: Promise<unknown>[], log: LogWriter | undefined, master: number | undefined): Promise<ExitInfo> {
    const status = await child.exited
    await this.#ctx.network?.stopped().catch(() => {})
    // Init is gone: the kernel kills the rest of the pid namespace. Output still in flight
    // drains first (a pty master ends with EIO once no slave is open).
    await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 2000).unref())])
    if (master !== undefined) await new Promise((r) => setImmediate(r))
    await log?.close()
    const oomKilled = (await oomKills(this.#ctx.cgroup).catch(() => 0)) > 0
    const info: ExitInfo = { exitCode: status.code, signal: status.signal, oomKilled }
    const s = this.#ctx.state
    s.status = 'exited'
    s.finished = new Date().toISOString()
    s.exitCode = status.code
    s.signal = status.signal
    s.oomKilled = oomKilled
    await this.#startSaved
    // A container removed when it exits does not need its exit on disk: if we crash before
    // removing it, the next open releases it anyway (autoRemove), whatever its status says.
    if (!s.config.autoRemove) await this.#ctx.save(s).catch(() => {})
    // Only now: wait() must not resolve before the exit is on disk (a `ctr run` that exits
    // right after would cut the write short, and the next open would take it for a crash).
    this.#exitInfo = info
    if (oomKilled) this.#emit({ type: 'oom', time: new Date() })
    this.#emit({ type: 'exit', time: new Date(), ...info })
    return info
  }

  /** Resolves once the state written at start (status running, pid) is on disk. */
  async settled(): Promise<void> {
    await this.#startSaved
  }

  /** Waits until the container's init exits. */
  async wait(): Promise<ExitInfo> {
    if (this.#exitInfo) return this.#exitInfo
    if (!this.#exit) {
      const s = this.#ctx.state
      if (s.status === 'exited') return { exitCode: s.exitCode ?? null, signal: (s.signal ?? null) as NodeJS.Signals | null, oomKilled: s.oomKilled ?? false }
      throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} has not been started`)
    }
    return this.#exit
  }

  /** Whether the container was killed by {@link kill} with this signal (timeouts use it). */
  get killedWith(): NodeJS.Signals | undefined {
    return this.#killedByUs
  }

  /**
   * Sends a signal to the container's init (`docker kill`); `all: true` signals every process
   * in the container's cgroup. SIGKILL always goes to every process.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL', options: { all?: boolean } = {}): Promise<void> {
    if (this.#ctx.state.status !== 'running' && this.#ctx.state.status !== 'paused') return
    this.#killedByUs ??= signal
    if (signal === 'SIGKILL' || options.all) {
      await this.#ctx.cgroup.kill(signal)
    } else {
      this.#child?.kill(signal)
    }
  }

  /** SIGTERM, then SIGKILL after `timeoutMs` (default 10 s), as `docker stop`. */
  async stop(options: { timeoutMs?: number; signal?: NodeJS.Signals } = {}): Promise<ExitInfo> {
    if (this.#ctx.state.status === 'paused') await this.resume()
    await this.kill(options.signal ?? 'SIGTERM')
    const timer = setTimeout(() => void this.kill('SIGKILL'), options.timeoutMs ?? 10_000)
    try {
      return await this.wait()
    } finally {
      clearTimeout(timer)
    }
  }

  /** Freezes every process of the container (cgroup freezer). */
  async pause(): Promise<void> {
    const s = this.#ctx.state
    if (s.status !== 'running') throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} is ${s.status}, not running`)
    await this.#ctx.cgroup.freeze()
    s.status = 'paused'
    await this.#startSaved
    await this.#ctx.save(s)
    this.#emit({ type: 'pause', time: new Date() })
  }

  /** Thaws a paused container. */
  async resume(): Promise<void> {
    const s = this.#ctx.state
    if (s.status !== 'paused') throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} is ${s.status}, not paused`)
    await this.#ctx.cgroup.thaw()
    s.status = 'running'
    await this.#startSaved
    await this.#ctx.save(s)
    this.#emit({ type: 'resume', time: new Date() })
  }

  /**
   * Runs another process inside the running container: its namespaces (so the same pid
   * namespace, files and network), cgroup, capabilities, seccomp filter and user.
   */
  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const s = this.#ctx.state
    if (s.status !== 'running' || !this.#child) {
      throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} is ${s.status}: exec needs a running container`)
    }
    if (!Array.isArray(argv) || argv.length === 0 || argv.some((a) => typeof a !== 'string')) {
      throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', 'argv: a non-empty array of strings', { field: 'argv' })
    }
    const base = this.#ctx.spawnOptions
    const env = { ...base.env, ...options.env }
    const user = options.user ? await this.#ctx.resolveUser(options.user) : base.user
    const child = await enter(this.#child.pid, {
      argv,
      env,
      cwd: options.workdir ?? base.cwd ?? '/',
      ...(user ? { user } : {}),
      ...(base.capabilities ? { capabilities: base.capabilities } : {}),
      ...(base.noNewPrivileges ? { noNewPrivileges: true } : {}),
      ...(base.seccomp ? { seccomp: base.seccomp } : {}),
      ...(base.rlimits ? { rlimits: base.rlimits } : {}),
      cgroup: this.#ctx.cgroup.placement,
      stdio: [options.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(options.signal ? { signal: options.signal } : {}),
    })
    if (options.stdin !== undefined && child.stdin) feed(child.stdin, options.stdin)
    const [stdout, stderr, status] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
    return { exitCode: status.code, signal: status.signal, stdout, stderr }
  }

  /** Memory, CPU, pids and I/O use, from the cgroup. */
  async stats(): Promise<CgroupStats> {
    return this.#ctx.cgroup.stats()
  }

  /** The container's processes (host pids), as `docker top`. */
  async top(): Promise<ProcessInfo[]> {
    const pids = await this.#ctx.cgroup.processes()
    const out: ProcessInfo[] = []
    for (const pid of pids) {
      try {
        const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        const status = await fs.readFile(`/proc/${pid}/status`, 'utf8')
        const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1)
        const cmdline = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean).join(' ')
        out.push({ pid, ppid: Number(fields[1]), uid, state: fields[0]!, command: cmdline || stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) })
      } catch {
        /* exited while we looked */
      }
    }
    return out
  }

  /** The container's log (output of a container started with `stdout: 'log'`). */
  async logs(options: { stream?: 'stdout' | 'stderr' | 'both' } = {}): Promise<LogEntry[]> {
    const file = this.#ctx.state.logPath
    if (!file) return []
    const entries = await readLogs(file)
    const want = options.stream ?? 'both'
    return want === 'both' ? entries : entries.filter((e) => e.stream === want)
  }

  /**
   * Lifecycle events (start, exit, oom, pause, resume, delete) as they happen, until `signal`
   * aborts or the container is deleted.
   */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<ContainerEvent> {
    const ac = new AbortController()
    const stop = () => ac.abort()
    options.signal?.addEventListener('abort', stop, { once: true })
    try {
      for await (const [event] of on(this.#events, 'event', { signal: ac.signal })) {
        yield event as ContainerEvent
        if ((event as ContainerEvent).type === 'delete') return
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err
    } finally {
      options.signal?.removeEventListener('abort', stop)
    }
  }

  #emit(e: ContainerEvent): void {
    this.#events.emit('event', e)
  }

  /**
   * Removes the container: its cgroup, snapshot and state. A running container needs
   * `force: true` (it is killed first), as `docker rm -f`. Idempotent.
   */
  async delete(options: { force?: boolean } = {}): Promise<void> {
    if (this.#deleted) return
    const s = this.#ctx.state
    if ((s.status === 'running' || s.status === 'paused') && this.#child) {
      if (!options.force) throw new RuntimeError('ERR_RUNTIME_STATE', `container ${this.name} is ${s.status}: stop it first or delete with force`)
      if (s.status === 'paused') await this.#ctx.cgroup.thaw().catch(() => {})
      await this.#ctx.cgroup.kill('SIGKILL').catch(() => {})
      await this.wait().catch(() => {})
    }
    this.#deleted = true
    await this.#startSaved
    await releaseResources(this.#ctx.resources)
    this.#emit({ type: 'delete', time: new Date() })
  }
}

/** Writes `data` to a child's stdin and ends it; a child that exits early is fine (EPIPE). */
function feed(stdin: Writable, data: string | Uint8Array | Readable): void {
  stdin.on('error', () => {})
  if (data instanceof Readable) {
    pipeline(data, stdin).catch(() => {})
  } else {
    stdin.end(data)
  }
}
