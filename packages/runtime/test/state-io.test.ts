/**
 * The state directory's small files are written synchronously only on a memory file system
 * (tmpfs, ramfs), through the thread pool elsewhere; both ways write the same files.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { stateIoFor } from '../src/container/state-io.js'

const TMPFS_MAGIC = 0x01021994

describe('stateIoFor', () => {
  it('is synchronous on tmpfs (/dev/shm), found through the nearest existing ancestor', async () => {
    expect(fs.statfsSync('/dev/shm').type).toBe(TMPFS_MAGIC)
    expect((await stateIoFor('/dev/shm/ctr-not-made-yet/run')).sync).toBe(true)
  })

  it('follows the file system of a disk directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-stateio-'))
    try {
      const onTmpfs = fs.statfsSync(dir).type === TMPFS_MAGIC
      expect((await stateIoFor(path.join(dir, 'a/b'))).sync).toBe(onTmpfs)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const where of ['/dev/shm', os.tmpdir()]) {
    it(`writes, renames, links and removes the same way (${where})`, async () => {
      const dir = fs.mkdtempSync(path.join(where, 'ctr-stateio-'))
      try {
        const io = await stateIoFor(dir)
        await io.mkdir(path.join(dir, 'c'), 0o711)
        expect(fs.statSync(path.join(dir, 'c')).mode & 0o777).toBe(0o711)
        await io.writeFile(path.join(dir, 'c', 'state.json.tmp'), '{"a":1}', 0o644)
        await io.rename(path.join(dir, 'c', 'state.json.tmp'), path.join(dir, 'c', 'state.json'))
        expect(fs.readFileSync(path.join(dir, 'c', 'state.json'), 'utf8')).toBe('{"a":1}')
        await io.symlink('c', path.join(dir, 'name'))
        expect(await io.readlink(path.join(dir, 'name'))).toBe('c')
        expect(await io.readlink(path.join(dir, 'missing'))).toBe('')
        await io.rm(path.join(dir, 'c'), true)
        await io.rm(path.join(dir, 'name'))
        expect(fs.readdirSync(dir)).toEqual([])
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
