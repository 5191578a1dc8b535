/**
 * Per-file hygiene: after a file's own afterAll hooks, no child process of the worker
 * (running or zombie) and no new mount in the host namespace may be left.
 */
import fs from 'node:fs'
import { afterAll, beforeAll, expect } from 'vitest'
import { childrenOf, waitFor } from '@ctr/fixtures'

const mounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[4]!)
let before = new Set<string>()

beforeAll(() => {
  before = new Set(mounts())
})

afterAll(async () => {
  const children = () => childrenOf(process.pid).map((p) => `${p.pid} ${p.comm} state=${p.state}`)
  await waitFor(() => children().length === 0, 3000)
  expect(children(), 'child processes left by this file').toEqual([])
  expect(mounts().filter((m) => !before.has(m)), 'mounts left in the host namespace').toEqual([])
})
