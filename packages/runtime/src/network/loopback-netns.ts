/**
 * Network namespaces for containers on network `none` (only `lo`, up), made ahead of need.
 *
 * A new network namespace is about a millisecond of kernel work, and a clone with
 * CLONE_NEWNET waits for all of it: the largest single part of a start. While containers are
 * started here one after another, the next one's namespace is made in the background on a
 * worker thread (the addon's `openNewNetns`), as the current one runs, and the next start
 * joins it instead. The first start after a pause makes its own, as before. A spare unused for
 * {@link SPARE_IDLE_MS} is closed, and so is one left at `Runtime.close()`.
 *
 * Like the spare namespaces of bridge networks (network.ts), this moves work off the path of a
 * start; it does not remove it.
 */
import { close } from '@ctr/native'
import { Netlink } from '@ctr/namespaces'

/** How long a spare waits for a start before it is closed, and how recent the last start must be for a spare to be made. */
export const SPARE_IDLE_MS = 2000

interface Spare {
  netnsFd: number
  /** `/proc/self/fd/<netnsFd>`: what a spawn's `join.net` takes. */
  path: string
}

let spare: Spare | undefined
let making: Promise<void> | undefined
let lastStart = Number.NEGATIVE_INFINITY
let idleTimer: NodeJS.Timeout | undefined

async function makeSpare(): Promise<Spare> {
  const ns = await Netlink.openNewNetns()
  try {
    // `lo` up, as Docker and runc leave it in a container of its own network namespace.
    await ns.netlink.batch().setLink({ index: 1 }, { up: true }).send()
  } catch (err) {
    close(ns.netnsFd)
    throw err
  } finally {
    ns.netlink.close()
  }
  return { netnsFd: ns.netnsFd, path: ns.path }
}

function armIdleTimer(): void {
  if (idleTimer) clearTimeout(idleTimer)
  idleTimer = setTimeout(dropLoopbackSpare, SPARE_IDLE_MS)
  idleTimer.unref()
}

/**
 * The spare namespace for a start on network `none`, or undefined when none is ready (the
 * start then makes its own with CLONE_NEWNET). The caller joins `path` and calls `release()`
 * once its process runs there (or failed to): the namespace then lives as long as the
 * container's processes.
 */
export function takeLoopbackNetns(): { path: string; release: () => void } | undefined {
  const s = spare
  spare = undefined
  if (!s) return undefined
  let open = true
  return {
    path: s.path,
    release: () => {
      if (!open) return
      open = false
      close(s.netnsFd)
    },
  }
}

/**
 * Called at each start on network `none`: when starts come one after another (the previous
 * within {@link SPARE_IDLE_MS}), makes the next one's namespace in the background.
 */
export function noteLoopbackStart(): void {
  const now = Date.now()
  const recent = now - lastStart <= SPARE_IDLE_MS
  lastStart = now
  if (!recent || spare || making) return
  making = makeSpare()
    .then((s) => {
      if (spare) close(s.netnsFd)
      else spare = s
      armIdleTimer()
    })
    .catch(() => {
      // No spare this time: the next start makes its own namespace (and reports any error).
    })
    .finally(() => {
      making = undefined
    })
}

/** Closes the spare namespace, if any (after one being made is there). */
export async function dropLoopbackSpareAsync(): Promise<void> {
  await making
  dropLoopbackSpare()
}

/** Closes the spare namespace, if any. */
export function dropLoopbackSpare(): void {
  if (idleTimer) clearTimeout(idleTimer)
  idleTimer = undefined
  const s = spare
  spare = undefined
  if (s) close(s.netnsFd)
}
