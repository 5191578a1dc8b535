/**
 * Shared helpers for the @ctr/namespaces tests: running a child to completion, always
 * killing it, and recording every child so the global teardown can tell if one survived.
 */
import { spawn as nodeSpawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { inject } from 'vitest'
import { spawn, enter, readText } from '../../src/index.js'
import { HELPERS_DIR, procStat } from './proc.js'

export * from './proc.js'

export type SpawnOpts = Parameters<typeof spawn>[0]
export type EnterOpts = Parameters<typeof enter>[1]
export type NsChild = Awaited<ReturnType<typeof spawn>>

/** Records a child's pid and start time in the run's pid log (checked after the run). */
export function track<T extends { pid: number }>(child: T): T {
  const st = procStat(child.pid)
  if (st) fs.appendFileSync(inject('pidLog'), `${st.pid} ${st.starttime}\n`)
  return child
}

/** `spawn` + {@link track}. */
export async function start(opts: SpawnOpts): Promise<NsChild> {
  return track(await spawn(opts))
}

/** `enter` + {@link track}. */
export async function startEnter(pid: number, opts: EnterOpts): Promise<NsChild> {
  return track(await enter(pid, opts))
}

// ---------------------------------------------------------------- running children

export interface RunResult {
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Spawns with stdout and stderr piped (stdin ignored unless given) and waits for the exit. */
export async function run(opts: SpawnOpts): Promise<RunResult> {
  const child = await start({ stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  return collect(child)
}

export async function runEnter(pid: number, opts: EnterOpts): Promise<RunResult> {
  const child = await startEnter(pid, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  return collect(child)
}

async function collect(child: NsChild): Promise<RunResult> {
  try {
    const [stdout, stderr, ex] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
    return { pid: child.pid, code: ex.code, signal: ex.signal, stdout, stderr }
  } finally {
    child.kill('SIGKILL')
  }
}

/** Spawns, runs `fn`, and always kills and awaits the child. */
export async function withChild<T>(opts: SpawnOpts, fn: (c: NsChild) => Promise<T>): Promise<T> {
  const child = await start(opts)
  try {
    return await fn(child)
  } finally {
    await reap(child)
  }
}

export async function reap(child: NsChild | undefined): Promise<void> {
  if (!child) return
  child.kill('SIGKILL')
  await child.exited
}

/** Numeric entries of an `ls` output (e.g. of /proc). */
export function numericEntries(text: string): number[] {
  return text
    .split(/\s+/)
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b)
}

// ---------------------------------------------------------------- helper Node scripts

export interface HelperProcess {
  proc: ReturnType<typeof nodeSpawn>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stdout: () => string
  stderr: () => string
}

/** Starts `node test/helpers/<script> <args…>` with the given stdio (extra entries: fds 3, 4, …). */
export function startHelper(
  script: string,
  args: string[],
  stdio: ('ignore' | 'pipe' | 'inherit')[] = ['ignore', 'pipe', 'pipe'],
  opts: { shell?: string } = {},
): HelperProcess {
  const argv = [path.join(HELPERS_DIR, script), ...args]
  // with opts.shell, `/bin/bash -c <shell> node <script> <args…>` (the script must exec "$0" "$@")
  const proc = opts.shell
    ? nodeSpawn('/bin/bash', ['-c', opts.shell, process.execPath, ...argv], { stdio })
    : nodeSpawn(process.execPath, argv, { stdio })
  let out = ''
  let err = ''
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d))
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal })),
  )
  return { proc, exited, stdout: () => out, stderr: () => err }
}
