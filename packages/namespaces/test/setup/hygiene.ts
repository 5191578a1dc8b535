/**
 * Per-file hygiene (a setupFile: runs in the test worker before every test file). After the
 * file's own afterAll hooks, asserts that the file left behind no child process of the
 * worker (running or zombie), no fd (but the addon's one reaper epoll), and no mount in the host
 * namespace.
 */
import { afterAll, beforeAll, expect } from 'vitest'
import { childrenOf, mountinfo, newMounts, openFds, waitFor, type MountLine } from '../helpers/proc.js'

let fdsBefore = new Map<number, string>()
let mountsBefore: MountLine[] = []

beforeAll(() => {
  fdsBefore = openFds()
  mountsBefore = mountinfo()
})

afterAll(async () => {
  const children = () => childrenOf(process.pid).map((p) => `${p.pid} ${p.comm} state=${p.state}`)
  await waitFor(() => children().length === 0, 3000)
  expect(children(), 'child processes left by this file').toEqual([])

  // @ctr/native keeps one process-wide epoll fd for its reaper thread, created on first use
  const isReaperEpoll = (target: string) => target === 'anon_inode:[eventpoll]'
  const newFds = () => [...openFds()].filter(([fd, target]) => fdsBefore.get(fd) !== target)
  const leaked = () => {
    const fresh = newFds()
    const epolls = fresh.filter(([, t]) => isReaperEpoll(t))
    return fresh.filter(([, t]) => !isReaperEpoll(t) || epolls.length > 1).map(([fd, t]) => `${fd} -> ${t}`)
  }
  await waitFor(() => leaked().length === 0, 3000)
  expect(leaked(), 'fds opened by this file and not closed').toEqual([])

  expect(newMounts(mountsBefore), 'mounts left in the host namespace').toEqual([])
})
