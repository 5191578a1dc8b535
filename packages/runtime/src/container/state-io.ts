/**
 * File operations for a container's small state files (state.json, its name link, the /etc
 * files), synchronous or not depending on where the state directory lives.
 *
 * On a memory file system (tmpfs, as /run is on most distributions) a synchronous call takes
 * microseconds, while an fs.promises one costs ~100 µs of main-thread work and thread-pool
 * trips — for calls every container start and exit makes. On a disk file system, metadata
 * changes can take hundreds of microseconds to milliseconds each (journal): those go to the
 * thread pool, off the main thread.
 */
import fsSync, { promises as fs } from 'node:fs'
import path from 'node:path'
import { removeTree } from '@ctr/native'

export interface StateIo {
  readonly sync: boolean
  writeFile(file: string, data: string, mode?: number): Promise<void>
  rename(from: string, to: string): Promise<void>
  mkdir(dir: string, mode: number): Promise<void>
  symlink(target: string, link: string): Promise<void>
  /** The link's target, or '' when it cannot be read. */
  readlink(link: string): Promise<string>
  rm(p: string, recursive?: boolean): Promise<void>
}

const TMPFS_MAGIC = 0x01021994
const RAMFS_MAGIC = 0x858458f6

const syncIo: StateIo = {
  sync: true,
  writeFile: async (file, data, mode) => fsSync.writeFileSync(file, data, mode === undefined ? {} : { mode }),
  rename: async (from, to) => fsSync.renameSync(from, to),
  mkdir: async (dir, mode) => void fsSync.mkdirSync(dir, { mode }),
  symlink: async (target, link) => fsSync.symlinkSync(target, link),
  readlink: async (link) => {
    try {
      return fsSync.readlinkSync(link)
    } catch {
      return ''
    }
  },
  // A directory goes as one native job: rmSync's walk is a dozen calls and ~0.3 ms of
  // main-thread work for a container's state directory, even on tmpfs.
  rm: async (p, recursive = false) => (recursive ? removeTree(path.resolve(p)) : fsSync.rmSync(p, { force: true })),
}

const asyncIo: StateIo = {
  sync: false,
  writeFile: (file, data, mode) => fs.writeFile(file, data, mode === undefined ? {} : { mode }),
  rename: (from, to) => fs.rename(from, to),
  mkdir: async (dir, mode) => void (await fs.mkdir(dir, { mode })),
  symlink: (target, link) => fs.symlink(target, link),
  readlink: (link) => fs.readlink(link).catch(() => ''),
  // A directory tree as one thread-pool job (not a few trips per entry, as fs.rm).
  rm: (p, recursive = false) => (recursive ? removeTree(path.resolve(p)) : fs.rm(p, { force: true })),
}

/** The I/O style for a state directory: synchronous on tmpfs/ramfs, else asynchronous. */
export async function stateIoFor(dir: string): Promise<StateIo> {
  // The directory may not exist yet: its nearest existing ancestor is on the same file system
  // unless something is mounted in between, which would be made later and not be ours.
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const st = await fs.statfs(d)
      return st.type === TMPFS_MAGIC || st.type === RAMFS_MAGIC ? syncIo : asyncIo
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || d === '/') return asyncIo
    }
  }
}
