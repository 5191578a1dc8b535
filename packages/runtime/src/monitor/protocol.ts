/**
 * The monitor of a detached container (`ctr run -d`), as conmon or containerd-shim: a small
 * Node process of its own session that creates and starts the container, keeps its output in
 * the container log, records its exit in state.json and removes it with `--rm`.
 *
 * `ctr` starts it (`node dist/monitor/main.js --state <dir>`) detached, with stdio on
 * /dev/null and fd 3 a socketpair. Over fd 3 `ctr` sends one JSON line, a
 * {@link MonitorRequest}, and reads JSON lines back: the container id once it runs, or the
 * error. Then `ctr` exits; the monitor keeps running until the container ends.
 */
import { spawn } from 'node:child_process'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { CliMeta } from '../cli/container-view.js'
import type { CreateInput } from '../cli/run-options.js'

/** What `ctr` asks of a monitor. */
export interface MonitorRequest {
  root: string
  stateRoot: string
  insecure: string[]
  cgroupParent?: string
  /** `--host-netns`: the netns that plays the host for bridge networks (the default one is made there). */
  hostNetns?: number | string
  /** `create()` options; the image is already in the store (pull policy `never`). */
  create: CreateInput
  meta: CliMeta
}

/** What a monitor answers. */
export type MonitorReply =
  | { type: 'started'; id: string; name: string; pid: number }
  | { type: 'error'; message: string; code?: string; field?: string; stack?: string; exitCode: number }

/**
 * Reads one newline-terminated JSON message from a socket, leaving the socket open; undefined
 * when the socket ends first.
 */
export function readJsonLine<T>(sock: Socket): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const done = (v: T | undefined, err?: unknown) => {
      sock.off('data', onData)
      sock.off('end', onEnd)
      sock.off('close', onEnd)
      sock.off('error', onEnd)
      sock.pause()
      if (err) reject(err)
      else resolve(v)
    }
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('utf8')
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      try {
        done(JSON.parse(buf.slice(0, nl)) as T)
      } catch (err) {
        done(undefined, err)
      }
    }
    const onEnd = () => done(undefined)
    sock.on('data', onData)
    sock.once('end', onEnd)
    sock.once('close', onEnd)
    sock.once('error', onEnd)
    sock.resume()
  })
}

export const MONITOR_MAIN = fileURLToPath(new URL('./main.js', import.meta.url))

/**
 * Starts a monitor for a new container and waits until the container runs (or failed to);
 * the monitor is then on its own: `ctr` can exit.
 */
export async function startMonitor(req: MonitorRequest, o: { timeoutMs?: number } = {}): Promise<Extract<MonitorReply, { type: 'started' }>> {
  const child = spawn(process.execPath, [MONITOR_MAIN, '--state', req.stateRoot], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    cwd: '/',
    env: process.env,
  })
  const chan = child.stdio[3] as Socket
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))))
  child.once('error', () => {})
  chan.on('error', () => {})
  chan.write(JSON.stringify(req) + '\n')
  let timer: NodeJS.Timeout | undefined
  try {
    const reply = await Promise.race([
      readJsonLine<MonitorReply>(chan),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the monitor did not report within ${(o.timeoutMs ?? 600_000) / 1000} s`)), o.timeoutMs ?? 600_000)
      }),
    ])
    if (!reply) {
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 2000))])
      throw Object.assign(new Error(`the container monitor exited (status ${code}) before starting the container`), { code: 'ERR_CTR_MONITOR' })
    }
    if (reply.type === 'error') {
      throw Object.assign(new Error(reply.message), {
        code: reply.code ?? 'ERR_CTR_MONITOR',
        exitCode: reply.exitCode,
        ...(reply.field ? { field: reply.field } : {}),
        ...(reply.stack ? { monitorStack: reply.stack } : {}),
      })
    }
    return reply
  } finally {
    if (timer) clearTimeout(timer)
    chan.destroy()
    child.unref()
  }
}
