/**
 * cgroup v1 OOM notifications: an eventfd registered with `cgroup.event_control` against
 * `memory.oom_control` is signalled each time the cgroup runs out of memory. The addon
 * watches the eventfd; `oom_kill` counts come from memory.oom_control where the kernel keeps them.
 */
import { closeSync, openSync } from 'node:fs'
import path from 'node:path'
import { eventfd, watchEventfd } from '@ctr/native'
import type { CgroupEvent, Subscription } from '../backend.js'
import { parseFlatKeyed, readOptional, writeValue } from '../files.js'

const EFD_NONBLOCK = 0o4000

export async function subscribeOom(memoryDir: string, onEvent: (e: CgroupEvent) => void): Promise<Subscription> {
  const controlFile = path.join(memoryDir, 'memory.oom_control')
  const readKills = async () => parseFlatKeyed((await readOptional(controlFile)) ?? '').oom_kill ?? 0
  let kills = await readKills()
  const efd = eventfd(0, EFD_NONBLOCK)
  let oomFd: number | undefined
  try {
    oomFd = openSync(controlFile, 'r')
    await writeValue(path.join(memoryDir, 'cgroup.event_control'), `${efd} ${oomFd}`)
  } catch (err) {
    closeSync(efd)
    if (oomFd !== undefined) closeSync(oomFd)
    throw err
  }
  let closed = false
  const watcher = watchEventfd(efd, (count) => {
    if (closed) return
    onEvent({ type: 'oom', count })
    void readKills().then((now) => {
      if (!closed && now > kills) onEvent({ type: 'oom_kill', count: now - kills })
      kills = Math.max(kills, now)
    }, () => undefined)
  })
  return {
    close() {
      if (closed) return
      closed = true
      watcher.close() // closing the eventfd also ends the kernel's registration
      closeSync(oomFd!)
    },
  }
}
