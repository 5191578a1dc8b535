/**
 * The monitor process of a detached container (see ./protocol.ts): reads its request on fd 3,
 * creates and starts the container with its output in the container log, reports the id,
 * then waits for the exit (which the container records in state.json), removes the container
 * if asked (`--rm`), and exits. It is the container's owner in state.json, so crash cleanup
 * knows the container is looked after while it lives.
 *
 * SIGTERM, SIGINT or SIGHUP to the monitor stop the container as `ctr stop` would (SIGTERM,
 * SIGKILL after 10 s) and the monitor still records the exit before it goes.
 */
import { appendFileSync } from 'node:fs'
import { Socket } from 'node:net'
import path from 'node:path'
import type { Container } from '../container/container.js'
import { RuntimeError } from '../errors.js'
import { createSchema, parseOptions } from '../options/schema.js'
import { Runtime } from '../runtime.js'
import { writeMeta } from '../cli/container-view.js'
import { EXIT_CTR, execFailureStatus } from '../cli/errors.js'
import { readJsonLine, type MonitorReply, type MonitorRequest } from './protocol.js'

let logFile: string | undefined

/** Problems after the report have nobody to go to: they go to `monitor.log` in the state directory. */
function note(text: string): void {
  if (!logFile) return
  try {
    appendFileSync(logFile, `${new Date().toISOString()} ${text}\n`)
  } catch {
    /* the state directory is gone */
  }
}

async function main(): Promise<number> {
  const chan = new Socket({ fd: 3, readable: true, writable: true })
  chan.on('error', () => {})
  const send = (m: MonitorReply) => {
    if (!chan.destroyed && chan.writable) chan.write(JSON.stringify(m) + '\n')
  }
  const fail = (err: unknown) => {
    const e = err as { message?: string; code?: string; field?: string; stack?: string }
    send({
      type: 'error',
      message: e?.message ?? String(err),
      ...(typeof e?.code === 'string' ? { code: e.code } : {}),
      ...(typeof e?.field === 'string' ? { field: e.field } : {}),
      ...(e?.stack ? { stack: e.stack } : {}),
      exitCode: execFailureStatus(err) ?? EXIT_CTR,
    })
    chan.end()
  }

  const req = await readJsonLine<MonitorRequest>(chan)
  if (!req) return EXIT_CTR

  let runtime: Runtime
  let container: Container
  try {
    runtime = await Runtime.open({
      root: req.root,
      stateRoot: req.stateRoot,
      registry: { insecure: req.insecure },
      ...(req.cgroupParent ? { cgroupParent: req.cgroupParent } : {}),
      ...(req.hostNetns !== undefined ? { hostNetns: req.hostNetns } : {}),
    })
    container = await runtime.createParsed(parseOptions(createSchema, req.create), {})
  } catch (err) {
    fail(err)
    return EXIT_CTR
  }
  logFile = path.join(runtime.states.dir(container.id), 'monitor.log')
  try {
    await writeMeta(runtime.states, container.id, req.meta)
    await container.start({ stdout: 'log', stderr: 'log' })
    await container.settled() // running on disk before `ctr run -d` prints the id
  } catch (err) {
    await container.delete({ force: true }).catch(() => {})
    runtime.forget(container.id)
    fail(err)
    return EXIT_CTR
  }

  let stopping = false
  const stop = (sig: NodeJS.Signals) => {
    note(`${sig}: stopping the container`)
    if (stopping) return
    stopping = true
    void container.stop({ timeoutMs: 10_000 }).catch((err: unknown) => note(`stop: ${(err as Error).message}`))
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => stop('SIGHUP'))

  send({ type: 'started', id: container.id, name: container.name, pid: container.pid ?? 0 })
  chan.end()

  const exit = await container.wait()
  note(`container exited: ${exit.signal ?? exit.exitCode}${exit.oomKilled ? ' (OOM killed)' : ''}`)
  if (req.meta.autoRemove) {
    try {
      await container.delete({ force: true })
    } catch (err) {
      note(`remove: ${(err as Error).message}`)
      throw err
    }
    runtime.forget(container.id)
  }
  return 0
}

process.on('uncaughtException', (err) => {
  note(`uncaught: ${err.stack ?? err.message}`)
  process.exit(EXIT_CTR)
})

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    note(`failed: ${err instanceof RuntimeError ? err.message : (err as Error)?.stack ?? String(err)}`)
    process.exit(EXIT_CTR)
  },
)
