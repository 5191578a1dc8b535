/**
 * A code runner: an HTTP service that runs submitted snippets in throwaway containers, the
 * job of code execution engines such as Piston or Judge0. Each snippet gets a fresh busybox
 * container with no network, 64 MiB of memory, 64 processes, half a CPU, a read-only root with
 * a small writable /tmp, the user nobody, and a timeout; at most 4 run at once, 32 more wait.
 *
 * As root, from the repository root, after a build:
 *
 *     node examples/dist/code-runner.js [--port 8080]     # serves on 127.0.0.1
 *     curl -s 127.0.0.1:8080/run -d '{"language": "sh", "code": "echo hi; cat", "stdin": "there"}'
 *     node examples/dist/code-runner.js --self-test       # starts, sends a few snippets, exits
 *
 * POST /run {language: 'sh', code, stdin?, timeoutMs?} answers
 * {stdout, stderr, exitCode, signal, timedOut, oomKilled, truncated, usage: {cpuMs, memoryPeak}, durationMs};
 * bad input is a 400 naming the field, a full queue a 503.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { z } from 'zod'
import { run } from '@ctr/runtime'
import { busyboxImage } from './busybox-image.js'

const MAX_RUNNING = 4
const MAX_WAITING = 32
const MAX_OUTPUT = 64 * 1024 // bytes kept of stdout and of stderr each

const RunRequest = z.strictObject({
  language: z.literal('sh'),
  code: z.string().min(1).max(64 * 1024),
  stdin: z.string().max(1024 * 1024).optional(),
  timeoutMs: z.number().int().min(100).max(30_000).default(5000),
})
type RunRequest = z.infer<typeof RunRequest>

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message)
  }
}

/** Keeps the first `limit` bytes and drops the rest (still reading, so the program is never blocked). */
class Capped extends Writable {
  #chunks: Buffer[] = []
  #size = 0
  truncated = false
  constructor(readonly limit: number) {
    super()
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const room = this.limit - this.#size
    if (chunk.length > room) this.truncated = true
    if (room > 0) {
      this.#chunks.push(chunk.subarray(0, room))
      this.#size += Math.min(room, chunk.length)
    }
    done()
  }
  text(): string {
    return Buffer.concat(this.#chunks).toString('utf8')
  }
}

/** At most MAX_RUNNING at once; up to MAX_WAITING more wait their turn. */
let running = 0
const waiting: (() => void)[] = []
async function queued<T>(job: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) {
    if (waiting.length >= MAX_WAITING) throw new HttpError(503, 'too many runs waiting; try again later')
    await new Promise<void>((resolve) => waiting.push(resolve))
  } else {
    running++
  }
  try {
    return await job()
  } finally {
    const next = waiting.shift()
    if (next) next() // the slot passes straight to the next in line
    else running--
  }
}

async function runSnippet(image: string, req: RunRequest) {
  const stdout = new Capped(MAX_OUTPUT)
  const stderr = new Capped(MAX_OUTPUT)
  const r = await run({
    image,
    cmd: ['sh', '-c', req.code],
    ...(req.stdin !== undefined ? { stdin: req.stdin } : {}),
    stdout,
    stderr,
    user: 'nobody',
    network: 'none',
    memory: '64m',
    pids: 64,
    cpus: 0.5,
    readonly: true,
    mounts: [{ type: 'tmpfs', target: '/tmp', size: '16m' }],
    timeout: req.timeoutMs,
  })
  return {
    stdout: stdout.text(),
    stderr: stderr.text(),
    exitCode: r.exitCode,
    signal: r.signal,
    timedOut: r.timedOut,
    oomKilled: r.oomKilled,
    truncated: stdout.truncated || stderr.truncated,
    usage: { cpuMs: Math.round(r.usage.cpuUsec / 1000), memoryPeak: r.usage.memoryPeak ?? null },
    durationMs: Math.round(r.timings.total),
  }
}

async function readJson(req: IncomingMessage, limit = 2 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`)
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'the body is not JSON')
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

function startServer(image: string, port: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/run') throw new HttpError(404, 'POST /run')
      const parsed = RunRequest.safeParse(await readJson(req))
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!
        const field = [...issue.path, ...('keys' in issue ? issue.keys : [])].join('.')
        throw new HttpError(400, issue.message, field)
      }
      send(res, 200, await queued(() => runSnippet(image, parsed.data)))
    })().catch((err: unknown) => {
      if (err instanceof HttpError) send(res, err.status, { error: err.message, ...(err.field !== undefined ? { field: err.field } : {}) })
      else {
        console.error(err)
        send(res, 500, { error: 'internal error' })
      }
    })
  })
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as AddressInfo
      resolve({ url: `http://127.0.0.1:${bound}`, close: () => new Promise((r) => server.close(() => r())) })
    })
  })
}

async function selfTest(image: string): Promise<void> {
  const { url, close } = await startServer(image, 0)
  const post = async (body: unknown) => {
    const res = await fetch(`${url}/run`, { method: 'POST', body: JSON.stringify(body) })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }
  const cases: [string, unknown][] = [
    ['hello', { language: 'sh', code: 'echo "hello, $(cat)"; id -un', stdin: 'world' }],
    ['fork bomb', { language: 'sh', code: 'bomb() { bomb | bomb & }; bomb; sleep 1; echo survived', timeoutMs: 3000 }],
    ['infinite loop', { language: 'sh', code: 'while :; do :; done', timeoutMs: 1000 }],
    ['memory hog', { language: 'sh', code: 'head -c 1000m /dev/zero | tail' }],
    ['bad request', { language: 'python', code: 'print(1)' }],
  ]
  try {
    // Sent at once: the queue runs four, the fifth waits (and the bad request never queues).
    const results = await Promise.all(cases.map(([, body]) => post(body)))
    const short = (v: unknown) => (typeof v === 'string' && v.length > 60 ? `${JSON.stringify(v.slice(0, 60))}… (${v.length} chars)` : JSON.stringify(v))
    for (const [i, [name]] of cases.entries()) {
      const { status, body } = results[i]!
      console.log(`${name}: HTTP ${status} ${Object.entries(body).map(([k, v]) => `${k}=${short(v)}`).join(' ')}`)
    }
  } finally {
    await close()
  }
}

const image = await busyboxImage()
if (process.argv.includes('--self-test')) {
  await selfTest(image)
} else {
  const i = process.argv.indexOf('--port')
  const { url, close } = await startServer(image, i > 0 ? Number(process.argv[i + 1]) : 8080)
  console.log(`code runner on ${url}: POST /run {"language": "sh", "code": "..."}`)
  process.once('SIGINT', () => void close())
}
