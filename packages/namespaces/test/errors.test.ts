/**
 * Failures: a child that fails before exec rejects spawn() with a SpawnError naming the step,
 * and leaves no process and no mount; bad options reject with InvalidOptionsError before
 * anything is created.
 */
import fs from 'node:fs'
import path from 'node:path'
import { busyboxRootfs } from '@ctr/fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidOptionsError, spawn, SpawnError } from '../src/index.js'
import { childrenOf, mountinfo, newMounts, safeRm, tempDir, track, type SpawnOpts } from './helpers/util.js'

let dir: string
let root: string

beforeAll(async () => {
  dir = tempDir()
  root = await busyboxRootfs(path.join(dir, 'rootfs'))
})
afterAll(async () => {
  await safeRm(dir)
})

/** Spawns expecting a rejection; a child that was created anyway is killed. Returns the error. */
async function failure(opts: SpawnOpts): Promise<unknown> {
  try {
    const child = track(await spawn(opts))
    child.kill('SIGKILL')
    await child.exited
  } catch (err) {
    return err
  }
  throw new Error(`spawn(${JSON.stringify(opts)}) resolved, expected a rejection`)
}

/** Asserts: no child of ours (running or zombie) and no new mount. Checked at once: "no process is left". */
function expectNothingLeft(mountsBefore: ReturnType<typeof mountinfo>): void {
  expect(childrenOf(process.pid).map((p) => `${p.pid} ${p.comm} ${p.state}`)).toEqual([])
  expect(newMounts(mountsBefore)).toEqual([])
  expect(mountinfo().map((m) => m.line)).toEqual(mountsBefore.map((m) => m.line))
}

describe('SpawnError', () => {
  it('a missing program rejects with ENOENT, the step names it, nothing is left', async () => {
    const before = mountinfo()
    const err = await failure({ argv: ['/nonexistent'] })
    expect(err).toBeInstanceOf(SpawnError)
    expect(err).toBeInstanceOf(Error)
    const e = err as SpawnError
    expect(e.code).toBe('ENOENT')
    expect(e.errno).toBe(2)
    expect(e.step).toContain('/nonexistent')
    expect(e.message).toContain('/nonexistent')
    expect(e.message).toMatch(/ENOENT/)
    expectNothingLeft(before)
  })

  it('a file that is not executable rejects with EACCES', async () => {
    const file = path.join(dir, 'not-executable')
    fs.writeFileSync(file, '#!/bin/sh\necho hi\n', { mode: 0o644 })
    const before = mountinfo()
    const err = await failure({ argv: [file] })
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('EACCES')
    expect((err as SpawnError).step).toContain(file)
    expectNothingLeft(before)
  })

  it('a missing program inside a rootfs with new pid+mnt namespaces: ENOENT, nothing left', async () => {
    const before = mountinfo()
    const err = await failure({
      argv: ['/bin/definitely-not-here'],
      namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'],
      rootfs: { path: root },
    })
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toContain('/bin/definitely-not-here')
    expectNothingLeft(before)
  })

  it('a failing mount rejects with ENOENT, the step names the mount, nothing is left', async () => {
    const before = mountinfo()
    const err = await failure({
      argv: ['/bin/true'],
      namespaces: ['mnt', 'pid'],
      rootfs: { path: root, mounts: [{ type: 'bind', source: '/nonexistent-src', target: '/mnt' }] },
    })
    expect(err).toBeInstanceOf(SpawnError)
    const e = err as SpawnError
    expect(e.code).toBe('ENOENT')
    expect(e.step).toMatch(/mount/i)
    expect(e.step.includes('/nonexistent-src') || e.step.includes('/mnt'), e.step).toBe(true)
    expectNothingLeft(before)
  })

  it('joining the namespace of a process that does not exist rejects, nothing is left', async () => {
    const before = mountinfo()
    const err = await failure({ argv: ['/bin/true'], join: { net: 2 ** 22 + 4321 } })
    expect(err).toBeInstanceOf(Error)
    expect((err as { code?: string }).code).toBeDefined()
    expectNothingLeft(before)
  })

  it('a missing rootfs directory rejects, nothing is left', async () => {
    const before = mountinfo()
    const err = await failure({ argv: ['/bin/true'], namespaces: ['mnt'], rootfs: { path: path.join(dir, 'no-rootfs') } })
    expect(err).toBeInstanceOf(Error)
    expectNothingLeft(before)
  })
})

describe('InvalidOptionsError', () => {
  const cases: [string, SpawnOpts, RegExp][] = [
    ['empty argv', { argv: [] }, /^argv/],
    ['hostname without uts', { argv: ['/bin/true'], hostname: 'x' }, /hostname/],
    ['rootfs without mnt', { argv: ['/bin/true'], namespaces: ['pid'], rootfs: { path: '/tmp' } }, /rootfs/],
    ['unknown namespace name', { argv: ['/bin/true'], namespaces: ['bogus' as never] }, /namespaces/],
    ['non-integer uid', { argv: ['/bin/true'], user: { uid: 1.5, gid: 0 } }, /user|uid/],
    ['negative gid', { argv: ['/bin/true'], user: { uid: 0, gid: -1 } }, /user|gid/],
    [
      'unknown capability name',
      { argv: ['/bin/true'], capabilities: { bounding: ['CAP_NOT_A_CAP'] } },
      /capabilities/,
    ],
  ]

  for (const [name, opts, field] of cases) {
    it(`${name}: rejects with ERR_CTR_INVALID_OPTIONS naming the option, creating nothing`, async () => {
      const before = mountinfo()
      const err = await failure(opts)
      expect(err).toBeInstanceOf(InvalidOptionsError)
      expect(err).toBeInstanceOf(Error)
      expect((err as InvalidOptionsError).code).toBe('ERR_CTR_INVALID_OPTIONS')
      expect((err as InvalidOptionsError).field).toMatch(field)
      expectNothingLeft(before)
    })
  }

  it('rootfs without mnt mounts nothing on the host (rootfs dir stays empty of mounts)', async () => {
    const before = mountinfo()
    const err = await failure({ argv: ['/bin/true'], rootfs: { path: root } })
    expect(err).toBeInstanceOf(InvalidOptionsError)
    expect(fs.readdirSync(path.join(root, 'proc'))).toEqual([])
    expectNothingLeft(before)
  })

  it('is reported through the returned promise, not thrown synchronously', async () => {
    let p: Promise<unknown> | undefined
    expect(() => {
      p = spawn({ argv: [] })
    }).not.toThrow()
    await expect(p).rejects.toBeInstanceOf(InvalidOptionsError)
  })
})
