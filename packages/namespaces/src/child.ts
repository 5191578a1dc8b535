import fs from 'node:fs'
import os from 'node:os'
import type { Readable, Writable } from 'node:stream'
import { watchExit, type ExitWatcher } from '@ctr/native'
import type { Child, ExitStatus } from './types.js'

function signalName(n: number): NodeJS.Signals | null {
  for (const [name, value] of Object.entries(os.constants.signals)) if (value === n) return name as NodeJS.Signals
  return null
}

function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') return signal
  const n = (os.constants.signals as Record<string, number>)[signal]
  if (n === undefined) throw Object.assign(new TypeError(`unknown signal ${signal}`), { code: 'ERR_UNKNOWN_SIGNAL' })
  return n
}

/** A spawned child, watched through its pidfd. */
export class RunningChild implements Child {
  readonly exited: Promise<ExitStatus>
  readonly stdin: Writable | null
  readonly stdout: Readable | null
  readonly stderr: Readable | null
  private readonly watcher: ExitWatcher
  private done = false

  constructor(
    readonly pid: number,
    pidfd: number,
    streams: { stdin: Writable | null; stdout: Readable | null; stderr: Readable | null },
    mountNamespaceFd?: number,
  ) {
    this.stdin = streams.stdin
    this.stdout = streams.stdout
    this.stderr = streams.stderr
    let settle!: (s: ExitStatus) => void
    this.exited = new Promise((resolve) => (settle = resolve))
    this.watcher = watchExit(pidfd, (code, signal) => {
      this.done = true
      settle({ code, signal: signal === null ? null : signalName(signal) })
      // The child's mount namespace, held since the spawn (`holdMountNs`): with it open, the
      // kernel did not unmount the container's ~25 mounts (and wait for an RCU grace period)
      // inside the exit, before reporting it. They go now, on a thread-pool thread, after the
      // exit has been reported.
      if (mountNamespaceFd !== undefined) fs.close(mountNamespaceFd, () => {})
    })
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const n = signalNumber(signal)
    if (this.done) return false
    try {
      this.watcher.kill(n)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false
      throw err
    }
  }

  ref(): void {
    this.watcher.ref()
  }

  unref(): void {
    this.watcher.unref()
  }
}
