/**
 * `ctr run`: in the foreground `ctr` owns the container (output to the terminal and to the
 * container log, signals forwarded, the exit status becomes ours); with `-d` a monitor
 * process owns it and `ctr` prints its id and exits.
 */
import path from 'node:path'
import { Writable } from 'node:stream'
import type { Container } from '../../container/container.js'
import { LogWriter } from '../../container/logs.js'
import { createSchema, parseOptions } from '../../options/schema.js'
import type { Runtime } from '../../runtime.js'
import { startMonitor } from '../../monitor/protocol.js'
import type { Context } from '../context.js'
import { exitStatus, writeMeta } from '../container-view.js'
import { ExitError, EXIT_CTR } from '../errors.js'
import type { Parsed } from '../args.js'
import { flagError, planRun, type RunPlan } from '../run-options.js'
import { attachTerminal } from '../terminal.js'
import { pullImage } from './images.js'

/** Writes to a stream of ours and to the container log. */
class Tee extends Writable {
  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly log: LogWriter,
    private readonly stream: 'stdout' | 'stderr',
  ) {
    super()
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.log.write(this.stream, chunk)
    if (this.out.destroyed || !this.out.writable) return cb()
    if (this.out.write(chunk)) cb()
    else this.out.once('drain', () => cb())
  }
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']

export async function run(ctx: Context, p: Parsed): Promise<number> {
  const plan = await planRun(p.values, p.args)
  if (plan.tty && plan.interactive && !process.stdin.isTTY) throw new ExitError('the input device is not a TTY (drop -t, or run from a terminal)', EXIT_CTR)
  try {
    // Option errors before anything is pulled or created, naming the flag.
    parseOptions(createSchema, plan.create)
  } catch (err) {
    throw flagError(err)
  }
  const rt = await ctx.runtime(plan.cgroupParent)
  const platform = plan.create.platform
  await pullImage(rt, plan.image, { policy: plan.pull, ...(platform ? { platform } : {}), out: process.stderr, announce: true })
  const create = { ...plan.create, pull: 'never' as const }
  return plan.detach ? runDetached(ctx, plan, create) : runForeground(rt, plan, create)
}

async function runDetached(ctx: Context, plan: RunPlan, create: RunPlan['create']): Promise<number> {
  const g = ctx.globals
  const r = await startMonitor({
    root: g.root,
    stateRoot: g.stateRoot,
    insecure: g.insecure,
    ...(plan.cgroupParent ? { cgroupParent: plan.cgroupParent } : {}),
    ...(g.hostNetns !== undefined ? { hostNetns: g.hostNetns } : {}),
    create,
    meta: plan.meta,
  }).catch((err: unknown) => {
    throw flagError(err)
  })
  process.stdout.write(`${r.id}\n`)
  return 0
}

async function runForeground(rt: Runtime, plan: RunPlan, create: RunPlan['create']): Promise<number> {
  let c: Container
  try {
    // createParsed: runtime.ts's CreateOptions type is unusable (see run-options.ts CreateInput).
    c = await rt.createParsed(parseOptions(createSchema, create), {})
  } catch (err) {
    throw flagError(err)
  }
  const log = new LogWriter(path.join(rt.states.dir(c.id), 'container.log'))
  let detachTerminal: (() => void) | undefined
  let sigints = 0
  const forward = (sig: NodeJS.Signals) => {
    if (sig === 'SIGINT' && ++sigints >= 3) {
      process.stderr.write('ctr: got 3 interrupts, killing the container\n')
      void c.kill('SIGKILL').catch(() => {})
      return
    }
    void c.kill(sig).catch(() => {})
  }
  try {
    try {
      await writeMeta(rt.states, c.id, plan.meta)
    } catch (err) {
      await log.close()
      await c.delete({ force: true }).catch(() => {})
      rt.forget(c.id)
      throw err
    }
    process.stdout.on('error', () => {})
    process.stderr.on('error', () => {})
    for (const s of FORWARDED) process.on(s, forward)
    try {
      await c.start({
        stdout: new Tee(process.stdout, log, 'stdout'),
        stderr: new Tee(process.stderr, log, 'stderr'),
        ...(plan.interactive && !plan.tty ? { stdin: process.stdin } : {}),
      })
      await c.settled() // `ctr ps` elsewhere sees it running from here on
    } catch (err) {
      await log.close()
      await c.delete({ force: true }).catch(() => {})
      rt.forget(c.id)
      throw err
    }
    if (plan.tty) {
      const terminal = c.terminal
      detachTerminal = attachTerminal({ input: plan.interactive ? c.stdin : null, resize: (cols, rows) => terminal?.resize(cols, rows) })
    }
    const info = await c.wait()
    detachTerminal?.()
    await log.close()
    if (plan.remove) {
      await c.delete({ force: true })
      rt.forget(c.id)
    }
    return exitStatus(info)
  } finally {
    detachTerminal?.()
    for (const s of FORWARDED) process.off(s, forward)
  }
}
