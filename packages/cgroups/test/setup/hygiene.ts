/**
 * Per-file hygiene (a setupFile: runs in the test worker before every test file). After the
 * file's own afterAll hooks, asserts that the file left no child process of the worker
 * (running or zombie), no process in a cgroup of this run, and no ctr-test-* cgroup directory
 * of this run.
 */
import { afterAll, expect, inject } from 'vitest'
import { childrenOf, processesInCgroupsMatching, testCgroupDirs, waitFor } from '../helpers/proc.js'

afterAll(async () => {
  const children = () => childrenOf(process.pid).map((p) => `${p.pid} ${p.comm} state=${p.state}`)
  await waitFor(() => children().length === 0, 3000)
  expect(children(), 'child processes left by this file').toEqual([])

  const ours = `ctr-test-${inject('runId')}-`
  await waitFor(() => processesInCgroupsMatching(ours).length === 0, 3000)
  expect(processesInCgroupsMatching(ours), 'processes left in cgroups of this run').toEqual([])
  expect(testCgroupDirs(ours), 'cgroup directories left by this file').toEqual([])
})
