/** Container commands: ps, exec, logs, stop, kill, rm, stats, inspect, commit, prune. */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ReadStream, WriteStream } from 'node:tty'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CgroupStats } from '@ctr/cgroups'
import { close, openpty, setWinsize } from '@ctr/native'
import type { Child, Stdio } from '@ctr/namespaces'
import type { CommitChanges } from '@ctr/overlay-image'
import { isAlive } from '../../container/process-identity.js'
import type { ContainerState, StateStore } from '../../container/state.js'
import { bool, intFlag, list, str, UsageError, type CommandSpec, type Parsed } from '../args.js'
import {
  execIn,
  exitStatus,
  isRunning,
  openCgroup,
  parseSignal,
  readMeta,
  removeContainer,
  signalContainer,
  signalNumber,
  stopContainer,
} from '../container-view.js'
import type { Context } from '../context.js'
import { eachArg, ExitError, EXIT_CTR } from '../errors.js'
import { binarySize, commandColumn, formatTemplate, humanDuration, humanSize, splitRef, table } from '../format.js'
import { attachTerminal } from '../terminal.js'
import { displayRef } from './images.js'

// ---- ps ------------------------------------------------------------------------------------

export const PS_SPEC: CommandSpec = {
  name: 'ps',
  usage: '[OPTIONS]',
  summary: 'List containers (running ones; -a for all)',
  maxArgs: 0,
  flags: [
    { name: 'all', short: 'a', type: 'boolean', description: 'Show all containers (default shows just running)' },
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Only display container IDs' },
    { name: 'no-trunc', type: 'boolean', description: 'Don’t truncate output' },
    { name: 'format', type: 'string', value: 'string', description: 'Print each container with a template: {{.ID}} {{.Names}} {{.Status}} {{.State}} …' },
  ],
}

/** `Up 5 seconds`, `Exited (0) 3 seconds ago`, `Created`. */
export function statusText(s: ContainerState, now = Date.now()): string {
  if (s.status === 'created') return 'Created'
  if (s.status === 'exited') return `Exited (${exitStatus(s)}) ${s.finished ? `${humanDuration(now - Date.parse(s.finished))} ago` : ''}`.trimEnd()
  const up = `Up ${humanDuration(now - Date.parse(s.started ?? s.created))}`
  return s.status === 'paused' ? `${up} (Paused)` : up
}

export async function ps(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  let states = await rt.list()
  if (!bool(p.values, 'all')) states = states.filter((s) => s.status === 'running' || s.status === 'paused')
  states.sort((a, b) => Date.parse(b.created) - Date.parse(a.created))
  const noTrunc = bool(p.values, 'no-trunc')
  const id = (s: ContainerState) => (noTrunc ? s.id : s.id.slice(0, 12))
  if (bool(p.values, 'quiet')) {
    process.stdout.write(states.map((s) => `${id(s)}\n`).join(''))
    return 0
  }
  const now = Date.now()
  const format = str(p.values, 'format')
  if (format !== undefined) {
    for (const s of states) {
      const row = { ID: id(s), Image: s.image, Command: s.config.argv.join(' '), CreatedAt: s.created, Status: statusText(s, now), State: s.status, Names: s.name, Labels: s.config.labels, Pid: s.process?.pid ?? 0 }
      process.stdout.write(`${formatTemplate(format, row)}\n`)
    }
    return 0
  }
  const rows = states.map((s) => [id(s), s.image, commandColumn(s.config.argv, 20, !noTrunc), `${humanDuration(now - Date.parse(s.created))} ago`, statusText(s, now), s.name])
  process.stdout.write(table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows))
  return 0
}

// ---- exec ----------------------------------------------------------------------------------

export const EXEC_SPEC: CommandSpec = {
  name: 'exec',
  usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  summary: 'Run a command in a running container (its namespaces, cgroup, user, capabilities and seccomp filter)',
  stopAtPositional: true,
  minArgs: 2,
  flags: [
    { name: 'interactive', short: 'i', type: 'boolean', description: 'Keep STDIN open and connect it' },
    { name: 'tty', short: 't', type: 'boolean', description: 'Allocate a pseudo-TTY' },
    { name: 'env', short: 'e', type: 'string', multiple: true, value: 'list', description: 'Set environment variables (KEY=value)' },
    { name: 'user', short: 'u', type: 'string', value: 'string', description: 'Username or UID (format: <name|uid>[:<group|gid>])' },
    { name: 'workdir', short: 'w', type: 'string', value: 'string', description: 'Working directory inside the container' },
  ],
}

function waitClose(stream: NodeJS.ReadableStream | null, ms: number): Promise<void> {
  if (!stream) return Promise.resolve()
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms)
    t.unref()
    const done = () => {
      clearTimeout(t)
      resolve()
    }
    stream.once('close', done)
    stream.once('end', done)
  })
}

export async function exec(ctx: Context, p: Parsed): Promise<number> {
  const [name, ...argv] = p.args as [string, ...string[]]
  const states = ctx.states()
  const s = await states.resolve(name)
  const interactive = bool(p.values, 'interactive')
  const tty = bool(p.values, 'tty')
  if (tty && interactive && !process.stdin.isTTY) throw new ExitError('the input device is not a TTY (drop -t, or run from a terminal)', EXIT_CTR)
  const env: Record<string, string> = {}
  for (const e of list(p.values, 'env')) {
    const eq = e.indexOf('=')
    if (eq === 0) throw new UsageError(`invalid argument "${e}" for "-e, --env" flag: KEY=value`, 'exec')
    if (eq < 0) {
      if (process.env[e] !== undefined) env[e] = process.env[e]!
    } else env[e.slice(0, eq)] = e.slice(eq + 1)
  }
  if (tty && env['TERM'] === undefined && !s.config.env.some((x) => x.startsWith('TERM='))) env['TERM'] = 'xterm'
  const user = str(p.values, 'user')
  const workdir = str(p.values, 'workdir')
  let pty: { master: number; slave: number } | undefined
  let stdio: [Stdio, Stdio, Stdio]
  if (tty) {
    pty = openpty()
    stdio = [pty.slave, pty.slave, pty.slave]
  } else {
    stdio = [interactive ? 'pipe' : 'ignore', 'pipe', 'pipe']
  }
  let child: Child
  try {
    child = await execIn(states, s, {
      argv,
      env,
      ...(user !== undefined ? { user } : {}),
      ...(workdir !== undefined ? { workdir } : {}),
      stdio,
      ...(tty ? { controllingTerminal: 0 } : {}),
    })
  } catch (err) {
    if (pty) close(pty.master)
    throw err
  } finally {
    if (pty) close(pty.slave)
  }
  process.stdout.on('error', () => {})
  let outputs: Promise<void>[]
  let detach: (() => void) | undefined
  if (pty) {
    const master = pty.master
    const input = new ReadStream(master)
    input.on('error', () => {}) // EIO once the last slave is closed
    const output = new WriteStream(master)
    output.on('error', () => {})
    input.pipe(process.stdout, { end: false })
    outputs = [waitClose(input, 2000)]
    detach = attachTerminal({ input: interactive ? output : null, resize: (c, r) => setWinsize(master, c, r) })
  } else {
    child.stdout!.pipe(process.stdout, { end: false })
    child.stderr!.pipe(process.stderr, { end: false })
    outputs = [waitClose(child.stdout, 5000), waitClose(child.stderr, 5000)]
    if (interactive && child.stdin) {
      child.stdin.on('error', () => {})
      process.stdin.pipe(child.stdin)
    }
  }
  const forward = (sig: NodeJS.Signals) => child.kill(sig)
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const sg of sigs) process.on(sg, forward)
  try {
    const st = await child.exited
    await Promise.all(outputs)
    return st.signal ? 128 + (signalNumber(st.signal) ?? 0) : (st.code ?? 0)
  } finally {
    detach?.()
    for (const sg of sigs) process.off(sg, forward)
  }
}

// ---- logs ----------------------------------------------------------------------------------

export const LOGS_SPEC: CommandSpec = {
  name: 'logs',
  usage: '[OPTIONS] CONTAINER',
  summary: 'Print a container’s output (its log, in Docker’s json-file format)',
  minArgs: 1,
  maxArgs: 1,
  flags: [
    { name: 'follow', short: 'f', type: 'boolean', description: 'Follow log output until the container exits' },
    { name: 'tail', short: 'n', type: 'string', value: 'string', description: 'Number of lines to show from the end ("all" by default)' },
    { name: 'timestamps', short: 't', type: 'boolean', description: 'Show timestamps' },
  ],
}

interface RawEntry {
  log: string
  stream: 'stdout' | 'stderr'
  time: string
}

function parseLines(text: string): RawEntry[] {
  const out: RawEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      const o = JSON.parse(line) as Partial<RawEntry>
      if (typeof o.log === 'string' && (o.stream === 'stdout' || o.stream === 'stderr')) out.push({ log: o.log, stream: o.stream, time: String(o.time) })
    } catch {
      /* torn line */
    }
  }
  return out
}

async function writeEntries(entries: RawEntry[], timestamps: boolean): Promise<void> {
  for (const e of entries) {
    const out = e.stream === 'stdout' ? process.stdout : process.stderr
    const text = timestamps ? `${e.time} ${e.log}` : e.log
    if (!out.write(text)) await new Promise((r) => out.once('drain', r))
  }
}

export function logFile(states: StateStore, s: ContainerState): string {
  return s.logPath ?? path.join(states.dir(s.id), 'container.log')
}

export async function logs(ctx: Context, p: Parsed): Promise<number> {
  const tailText = str(p.values, 'tail') ?? 'all'
  if (tailText !== 'all' && !/^\d+$/.test(tailText)) throw new UsageError(`invalid argument "${tailText}" for "-n, --tail" flag: a number or "all"`, 'logs')
  const states = ctx.states()
  const s = await states.resolve(p.args[0]!)
  const tail = tailText === 'all' ? undefined : Number(tailText)
  const timestamps = bool(p.values, 'timestamps')
  const follow = bool(p.values, 'follow')
  process.stdout.on('error', () => process.exit(0))
  let fh: fs.FileHandle
  try {
    fh = await fs.open(logFile(states, s), 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
  try {
    let offset = 0
    let pending = ''
    const readMore = async (): Promise<RawEntry[]> => {
      const chunks: Buffer[] = []
      const buf = Buffer.alloc(1 << 16)
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset)
        if (bytesRead === 0) break
        offset += bytesRead
        chunks.push(Buffer.from(buf.subarray(0, bytesRead)))
      }
      const text = pending + Buffer.concat(chunks).toString('utf8')
      const nl = text.lastIndexOf('\n')
      pending = nl < 0 ? text : text.slice(nl + 1)
      return parseLines(nl < 0 ? '' : text.slice(0, nl + 1))
    }
    let first = await readMore()
    if (tail !== undefined) first = tail === 0 ? [] : first.slice(-tail)
    await writeEntries(first, timestamps)
    if (!follow) return 0
    for (;;) {
      const cur = await states.read(s.id)
      const alive = cur !== undefined && cur.status !== 'exited' && (isAlive(cur.owner) || isAlive(cur.process))
      await writeEntries(await readMore(), timestamps)
      if (!alive) {
        // The owner closes the log after recording the exit: one last read.
        await writeEntries(await readMore(), timestamps)
        return 0
      }
      await sleep(100)
    }
  } finally {
    await fh.close()
  }
}

// ---- stop / kill / rm ----------------------------------------------------------------------

export const STOP_SPEC: CommandSpec = {
  name: 'stop',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Stop running containers: SIGTERM, then SIGKILL after a grace period',
  minArgs: 1,
  flags: [
    { name: 'time', short: 't', type: 'string', value: 'int', description: 'Seconds to wait before killing it (default 10)' },
    { name: 'signal', short: 's', type: 'string', value: 'string', description: 'Signal to send first (default SIGTERM)' },
  ],
}

export async function stop(ctx: Context, p: Parsed): Promise<number> {
  const timeoutSec = intFlag(p.values, 'time', 'stop', { min: 0, label: '-t, --time' }) ?? 10
  const sigText = str(p.values, 'signal')
  const signal = sigText === undefined ? undefined : parseSignal(sigText)
  if (sigText !== undefined && !signal) throw new UsageError(`invalid argument "${sigText}" for "-s, --signal" flag: not a signal`, 'stop')
  const states = ctx.states()
  return eachArg(p.args, async (arg) => {
    const s = await states.resolve(arg)
    await stopContainer(states, s, { timeoutSec, ...(signal ? { signal } : {}) })
    process.stdout.write(`${arg}\n`)
  })
}

export const KILL_SPEC: CommandSpec = {
  name: 'kill',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Send a signal to running containers (SIGKILL: to all their processes)',
  minArgs: 1,
  flags: [{ name: 'signal', short: 's', type: 'string', value: 'string', description: 'Signal to send (default KILL)' }],
}

export async function kill(ctx: Context, p: Parsed): Promise<number> {
  const sigText = str(p.values, 'signal') ?? 'KILL'
  const signal = parseSignal(sigText)
  if (!signal) throw new UsageError(`invalid argument "${sigText}" for "-s, --signal" flag: not a signal`, 'kill')
  const states = ctx.states()
  return eachArg(p.args, async (arg) => {
    const s = await states.resolve(arg)
    await signalContainer(s, signal)
    process.stdout.write(`${arg}\n`)
  })
}

export const RM_SPEC: CommandSpec = {
  name: 'rm',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  summary: 'Remove containers (their cgroup, filesystem and state)',
  minArgs: 1,
  flags: [{ name: 'force', short: 'f', type: 'boolean', description: 'Kill and remove a running container' }],
}

export async function rm(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const force = bool(p.values, 'force')
  return eachArg(p.args, async (arg) => {
    const s = await rt.states.resolve(arg)
    await removeContainer(rt.states, rt.store, s, { force })
    rt.forget(s.id)
    process.stdout.write(`${arg}\n`)
  })
}

// ---- stats ---------------------------------------------------------------------------------

export const STATS_SPEC: CommandSpec = {
  name: 'stats',
  usage: '[OPTIONS] [CONTAINER...]',
  summary: 'Display containers’ resource usage (from their cgroups)',
  flags: [
    { name: 'no-stream', type: 'boolean', description: 'Print one sample and exit' },
    { name: 'all', short: 'a', type: 'boolean', description: 'Show all containers (default shows just running)' },
    { name: 'format', type: 'string', value: 'string', description: 'json: one JSON object per container and sample' },
  ],
}

interface Sample {
  s: ContainerState
  stats: CgroupStats
  at: number
}

async function sample(s: ContainerState): Promise<Sample | undefined> {
  const cg = await openCgroup(s).catch(() => undefined)
  if (!cg) return undefined
  try {
    return { s, stats: await cg.stats(), at: performance.now() }
  } catch {
    return undefined
  }
}

function statsRow(a: Sample | undefined, b: Sample): Record<string, string | number> {
  const cpu = a ? ((b.stats.cpu.usageUsec - a.stats.cpu.usageUsec) / ((b.at - a.at) * 1000)) * 100 : 0
  const mem = b.stats.memory.current
  const limit = b.stats.memory.limit === 'max' ? os.totalmem() : Math.min(b.stats.memory.limit, os.totalmem())
  const read = b.stats.io.reduce((n, d) => n + d.readBytes, 0)
  const write = b.stats.io.reduce((n, d) => n + d.writeBytes, 0)
  return {
    ID: b.s.id.slice(0, 12),
    Name: b.s.name,
    CPUPerc: `${Math.max(0, cpu).toFixed(2)}%`,
    MemUsage: `${binarySize(mem)} / ${binarySize(limit)}`,
    MemPerc: `${((mem / limit) * 100).toFixed(2)}%`,
    BlockIO: `${humanSize(read)} / ${humanSize(write)}`,
    PIDs: b.stats.pids.current,
    cpuUsec: b.stats.cpu.usageUsec,
    memoryBytes: mem,
    memoryLimit: limit,
  }
}

export async function stats(ctx: Context, p: Parsed): Promise<number> {
  const states = ctx.states()
  const named = p.args.length > 0
  const pick = async (): Promise<ContainerState[]> => {
    if (named) {
      const out: ContainerState[] = []
      for (const a of p.args) {
        const s = await states.read((await states.resolve(a)).id)
        if (s) out.push(s)
      }
      return out
    }
    const all = await states.list()
    return bool(p.values, 'all') ? all : all.filter(isRunning)
  }
  if (named) await pick() // unknown names fail now, with "no such container"
  const json = str(p.values, 'format') === 'json'
  if (str(p.values, 'format') !== undefined && !json) throw new UsageError('--format: only "json" is supported', 'stats')
  const print = (rows: Record<string, string | number>[], clear: boolean) => {
    if (json) {
      process.stdout.write(rows.map((r) => JSON.stringify(r) + '\n').join(''))
      return
    }
    const text = table(
      ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'BLOCK I/O', 'PIDS'],
      rows.map((r) => [r['ID'], r['Name'], r['CPUPerc'], r['MemUsage'], r['MemPerc'], r['BlockIO'], r['PIDs']].map(String)),
    )
    process.stdout.write(clear ? `\x1b[2J\x1b[H${text}` : text)
  }
  let prev = new Map<string, Sample>()
  const take = async () => {
    const cur = new Map<string, Sample>()
    for (const s of await pick()) {
      const x = await sample(s)
      if (x) cur.set(s.id, x)
    }
    return cur
  }
  prev = await take()
  await sleep(500)
  if (bool(p.values, 'no-stream')) {
    const cur = await take()
    print([...cur.values()].map((b) => statsRow(prev.get(b.s.id), b)), false)
    return 0
  }
  let stopped = false
  const onInt = () => {
    stopped = true
  }
  process.once('SIGINT', onInt)
  process.stdout.on('error', () => process.exit(0))
  const tty = process.stdout.isTTY === true
  try {
    while (!stopped) {
      const cur = await take()
      print([...cur.values()].map((b) => statsRow(prev.get(b.s.id), b)), tty)
      prev = cur
      if (named && cur.size === 0) return 0
      await sleep(1000)
    }
    return 0
  } finally {
    process.off('SIGINT', onInt)
  }
}

// ---- inspect -------------------------------------------------------------------------------

export const INSPECT_SPEC: CommandSpec = {
  name: 'inspect',
  usage: '[OPTIONS] NAME|ID [NAME|ID...]',
  summary: 'Return low-level information on containers or images, as JSON',
  minArgs: 1,
  flags: [
    { name: 'format', short: 'f', type: 'string', value: 'string', description: 'Format with a template: {{.State.Status}}, {{json .Config}}' },
    { name: 'type', type: 'string', value: 'string', description: 'Only look for a container or an image' },
  ],
}

async function inspectContainer(states: StateStore, s: ContainerState): Promise<Record<string, unknown>> {
  const meta = await readMeta(states, s.id)
  const running = isRunning(s)
  return {
    Id: s.id,
    Name: s.name,
    Created: s.created,
    Path: s.config.argv[0] ?? '',
    Args: s.config.argv.slice(1),
    State: {
      Status: s.status,
      Running: running && s.status === 'running',
      Paused: s.status === 'paused',
      OOMKilled: s.oomKilled ?? false,
      Pid: running ? (s.process?.pid ?? 0) : 0,
      ExitCode: s.status === 'exited' ? exitStatus(s) : 0,
      Signal: s.signal ?? null,
      StartedAt: s.started ?? null,
      FinishedAt: s.finished ?? null,
    },
    Image: s.imageId,
    ImageName: s.image,
    ImageDigest: s.imageDigest,
    Rootfs: s.rootfs,
    LogPath: logFile(states, s),
    Config: {
      Hostname: s.config.hostname,
      User: `${s.config.user.uid}:${s.config.user.gid}`,
      Env: s.config.env,
      Cmd: s.config.argv,
      WorkingDir: s.config.cwd,
      Tty: s.config.tty,
      Labels: s.config.labels,
      Image: s.image,
    },
    HostConfig: meta?.host ?? { NetworkMode: s.config.network },
    Cgroup: s.cgroup,
    Owner: { Pid: s.owner.pid, Alive: isAlive(s.owner), Monitor: meta?.detached ?? false },
    StateDir: states.dir(s.id),
  }
}

async function inspectImage(ctx: Context, name: string): Promise<Record<string, unknown>> {
  const rt = await ctx.runtime()
  const i = await rt.store.inspect(name)
  const all = await rt.store.images()
  const refs = all.filter((x) => x.id === i.id)
  return {
    Id: i.id,
    RepoTags: refs.map((r) => displayRef(r.ref)).filter((r) => !r.includes('@')),
    RepoDigests: refs.map((r) => `${splitRef(r.ref).repository}@${r.digest}`),
    Created: i.created ?? null,
    Author: i.author ?? '',
    Architecture: i.architecture,
    Os: i.os,
    ...(i.variant ? { Variant: i.variant } : {}),
    Size: i.size,
    Config: {
      Entrypoint: i.entrypoint ?? null,
      Cmd: i.cmd ?? null,
      Env: i.env,
      WorkingDir: i.workingDir ?? '',
      User: i.user ?? '',
      ExposedPorts: Object.fromEntries(i.exposedPorts.map((port) => [port, {}])),
      Volumes: Object.fromEntries(i.volumes.map((v) => [v, {}])),
      Labels: i.labels,
      StopSignal: i.stopSignal ?? null,
    },
    RootFS: { Type: 'layers', Layers: i.diffIds },
    Layers: i.layers,
    Digest: i.digest,
    ManifestDigest: i.manifestDigest,
    History: i.history,
  }
}

export async function inspect(ctx: Context, p: Parsed): Promise<number> {
  const type = str(p.values, 'type')
  if (type !== undefined && type !== 'container' && type !== 'image') throw new UsageError(`invalid argument "${type}" for "--type" flag: container or image`, 'inspect')
  const states = ctx.states()
  const out: Record<string, unknown>[] = []
  let failed = 0
  for (const name of p.args) {
    try {
      let found: Record<string, unknown> | undefined
      if (type !== 'image') {
        try {
          found = await inspectContainer(states, await states.resolve(name))
        } catch (err) {
          if ((err as { code?: string }).code !== 'ERR_RUNTIME_NOT_FOUND' || type === 'container') throw err
        }
      }
      if (!found) {
        try {
          found = await inspectImage(ctx, name)
        } catch (err) {
          const code = (err as { code?: string }).code
          if (code === 'ERR_STORE_NOT_FOUND' || code === 'ERR_STORE_INVALID') throw new ExitError(`no such object: ${name}`, EXIT_CTR, { cause: err })
          throw err
        }
      }
      out.push(found)
    } catch (err) {
      failed++
      process.stderr.write(`ctr: ${(err as Error).message}\n`)
    }
  }
  const format = str(p.values, 'format')
  if (format !== undefined) process.stdout.write(out.map((o) => `${formatTemplate(format, o)}\n`).join(''))
  else process.stdout.write(`${JSON.stringify(out, null, 4)}\n`)
  return failed ? EXIT_CTR : 0
}

// ---- commit --------------------------------------------------------------------------------

export const COMMIT_SPEC: CommandSpec = {
  name: 'commit',
  usage: '[OPTIONS] CONTAINER [REPOSITORY[:TAG]]',
  summary: 'Create a new image from a container’s changes',
  minArgs: 1,
  maxArgs: 2,
  flags: [
    { name: 'author', short: 'a', type: 'string', value: 'string', description: 'Author (e.g., "Jane Doe <jane@example.com>")' },
    { name: 'message', short: 'm', type: 'string', value: 'string', description: 'Commit message' },
    { name: 'change', short: 'c', type: 'string', multiple: true, value: 'list', description: 'Apply Dockerfile instructions: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE' },
    { name: 'pause', short: 'p', type: 'boolean', defaultTrue: true, description: 'Freeze the container during the commit (default true; --pause=false)' },
  ],
}

/** Dockerfile words: JSON array form, or shell form (`/bin/sh -c`). */
function execForm(rest: string, what: string): string[] {
  const t = rest.trim()
  if (t.startsWith('[')) {
    let v: unknown
    try {
      v = JSON.parse(t)
    } catch {
      throw new UsageError(`--change "${what} ${rest}": not a JSON array of strings`, 'commit')
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new UsageError(`--change "${what} ${rest}": not a JSON array of strings`, 'commit')
    return v as string[]
  }
  return ['/bin/sh', '-c', t]
}

/** `KEY=value KEY2="v 2"` or the legacy `KEY value`. */
function pairs(rest: string, what: string): [string, string][] {
  const t = rest.trim()
  const re = /([^\s=]+)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/g
  const out: [string, string][] = []
  if (!/^[^\s=]+=/.test(t)) {
    const m = /^(\S+)\s+(.*)$/.exec(t)
    if (!m) throw new UsageError(`--change "${what} ${rest}": KEY=value`, 'commit')
    return [[m[1]!, m[2]!]]
  }
  for (const m of t.matchAll(re)) out.push([m[1]!, m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? m[5] ?? '')])
  return out
}

export function parseChanges(changes: string[]): CommitChanges {
  const c: CommitChanges = {}
  for (const line of changes) {
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line)
    if (!m) throw new UsageError(`--change "${line}": INSTRUCTION arguments`, 'commit')
    const what = m[1]!.toUpperCase()
    const rest = m[2]!
    switch (what) {
      case 'CMD':
        c.cmd = execForm(rest, what)
        break
      case 'ENTRYPOINT':
        c.entrypoint = execForm(rest, what)
        break
      case 'ENV':
        c.env = [...(c.env ?? []), ...pairs(rest, what).map(([k, v]) => `${k}=${v}`)]
        break
      case 'LABEL':
        c.labels = { ...(c.labels ?? {}), ...Object.fromEntries(pairs(rest, what)) }
        break
      case 'WORKDIR':
        c.workingDir = rest.trim()
        break
      case 'USER':
        c.user = rest.trim()
        break
      case 'EXPOSE':
        c.exposedPorts = [...(c.exposedPorts ?? []), ...rest.trim().split(/\s+/)]
        break
      default:
        throw new UsageError(`--change "${line}": ${what} is not supported (CMD, ENTRYPOINT, ENV, LABEL, WORKDIR, USER, EXPOSE)`, 'commit')
    }
  }
  return c
}

export async function commit(ctx: Context, p: Parsed): Promise<number> {
  const [name, ref] = p.args as [string, string | undefined]
  const changes = parseChanges(list(p.values, 'change'))
  const rt = await ctx.runtime()
  const s = await rt.states.resolve(name)
  const author = str(p.values, 'author')
  const message = str(p.values, 'message')
  const freeze = bool(p.values, 'pause') && s.status === 'running' && isRunning(s)
  const cg = freeze ? await openCgroup(s) : undefined
  if (cg) await cg.freeze()
  try {
    const r = await rt.store.commit(s.snapshot, {
      ...(ref ? { ref } : {}),
      ...(author ? { author } : {}),
      ...(message ? { message } : {}),
      ...(Object.keys(changes).length ? { changes } : {}),
    })
    process.stdout.write(`${r.id}\n`)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_STORE_INVALID' && ref) throw new UsageError(`invalid reference "${ref}": ${(err as Error).message}`, 'commit')
    throw err
  } finally {
    if (cg) await cg.thaw().catch(() => {})
  }
  return 0
}

// ---- prune ---------------------------------------------------------------------------------

export const PRUNE_SPEC: CommandSpec = {
  name: 'prune',
  usage: '[OPTIONS]',
  summary: 'Remove stopped containers, then blobs and layers no image or container uses',
  maxArgs: 0,
  flags: [
    { name: 'force', short: 'f', type: 'boolean', description: 'Do not prompt for confirmation (ctr never prompts; accepted for Docker compatibility)' },
    { name: 'grace', type: 'string', value: 'seconds', description: 'Keep unreferenced data younger than this (default 60: a pull or commit in progress elsewhere may not have named it yet)' },
  ],
}

export async function prune(ctx: Context, p: Parsed): Promise<number> {
  const grace = intFlag(p.values, 'grace', 'prune', { min: 0 })
  const rt = await ctx.runtime()
  const removed: string[] = []
  let failed = 0
  for (const s of await rt.list()) {
    const done = s.status === 'exited' || (s.status === 'created' && !isAlive(s.owner))
    if (!done) continue
    if (s.status === 'exited' && isAlive(s.owner) && (await readMeta(rt.states, s.id))?.autoRemove) continue // its owner removes it
    try {
      await removeContainer(rt.states, rt.store, s, { force: false })
      removed.push(s.id)
    } catch (err) {
      failed++
      process.stderr.write(`ctr: ${(err as Error).message}\n`)
    }
  }
  const gc = await rt.store.gc(grace !== undefined ? { graceMs: grace * 1000 } : {})
  if (removed.length) process.stdout.write(`Deleted Containers:\n${removed.map((id) => `${id}\n`).join('')}\n`)
  if (gc.removedBlobs.length) process.stdout.write(`Deleted Blobs:\n${gc.removedBlobs.map((d) => `${d}\n`).join('')}\n`)
  process.stdout.write(`Total reclaimed space: ${humanSize(gc.reclaimedBytes)}\n`)
  return failed ? EXIT_CTR : 0
}

