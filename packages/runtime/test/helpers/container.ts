/**
 * Running a program in a throwaway busybox container with `@ctr/namespaces`' spawn(): new
 * pid, mnt, uts, ipc and net namespaces and a root filesystem, so that nothing a test does
 * reaches the host. Children are always killed and awaited.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { busyboxRootfs } from '@ctr/fixtures'
import { readText, spawn } from '@ctr/namespaces'

export type SpawnOptions = Parameters<typeof spawn>[0]
export type Child = Awaited<ReturnType<typeof spawn>>

export interface Result {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** A busybox root filesystem in a fresh /tmp/ctr-runtime-* directory, with extra files copied in. */
export async function makeRootfs(extra: Record<string, string> = {}): Promise<{ root: string; dispose: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-runtime-'))
  const root = await busyboxRootfs(path.join(dir, 'rootfs'))
  for (const [target, source] of Object.entries(extra)) {
    fs.copyFileSync(source, path.join(root, target))
    fs.chmodSync(path.join(root, target), 0o755)
  }
  return { root, dispose: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** Options for a container on `root`: every namespace but user and cgroup, stdout/stderr piped. */
export function containerOptions(root: string, argv: string[], more: Partial<SpawnOptions> = {}): SpawnOptions {
  return {
    argv,
    namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'],
    hostname: 'box',
    rootfs: { path: root },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...more,
  }
}

/** Starts, collects stdout and stderr, waits for the exit; always kills on the way out. */
export async function runContainer(opts: SpawnOptions): Promise<Result> {
  const child = await spawn(opts)
  try {
    const [stdout, stderr, ex] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
    return { code: ex.code, signal: ex.signal, stdout, stderr }
  } finally {
    child.kill('SIGKILL')
    await child.exited
  }
}

/** Starts, hands the child to `fn`, then kills and awaits it whatever happened. */
export async function withContainer<T>(opts: SpawnOptions, fn: (c: Child) => Promise<T>): Promise<T> {
  const child = await spawn(opts)
  try {
    return await fn(child)
  } finally {
    child.kill('SIGKILL')
    await child.exited
  }
}

/** Resolves with the text once `stream` has printed something matching `re`. */
export function waitForOutput(stream: NodeJS.ReadableStream | null, re: RegExp, timeoutMs = 10_000): Promise<string> {
  if (!stream) throw new Error('no stream')
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => {
      stream.off('data', onData)
      reject(new Error(`timed out waiting for ${re} in ${JSON.stringify(text)}`))
    }, timeoutMs)
    const onData = (chunk: Buffer | string) => {
      text += chunk.toString()
      if (re.test(text)) {
        clearTimeout(timer)
        stream.off('data', onData)
        resolve(text)
      }
    }
    stream.on('data', onData)
  })
}
