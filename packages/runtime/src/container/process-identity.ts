/**
 * A process identity that survives pid reuse: the pid plus its start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot). State files record both, so a recycled pid is
 * never mistaken for the container or the process that owned it.
 */
import { readFileSync } from 'node:fs'

export interface ProcessIdentity {
  pid: number
  start: number
}

/** The start time of a live process, or undefined when it is gone. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // comm (field 2) may contain spaces and parentheses: fields restart after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = Number(fields[19])
    // A zombie still has its stat; it counts as gone.
    return fields[0] === 'Z' || !Number.isFinite(start) ? undefined : start
  } catch {
    return undefined
  }
}

let self: ProcessIdentity | undefined

/** This process's identity (read once: a process's start time never changes). */
export function selfIdentity(): ProcessIdentity {
  if (self?.pid !== process.pid) self = { pid: process.pid, start: processStart(process.pid)! }
  return { ...self }
}

/** Whether the process recorded as `id` is still the same live process. */
export function isAlive(id: ProcessIdentity | undefined): boolean {
  return id !== undefined && processStart(id.pid) === id.start
}
