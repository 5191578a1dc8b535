/**
 * Looking at what an unpack left on disk: a tree's every attribute, a sentinel directory that
 * must not change, the store's leftovers, this process's fds and zstd children.
 */
import { createHash } from 'node:crypto'
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lgetxattr, llistxattr } from '@ctr/native'

/** Everything about one file that an unpack must get right. */
export interface Node {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'
  mode: number
  uid: number
  gid: number
  /** Whole seconds. */
  mtime: number
  size: number
  sha?: string
  link?: string
  rdev?: number
  ino: number
  nlink: number
  xattrs: Record<string, string>
}

function typeOf(st: ReturnType<typeof lstatSync>): Node['type'] {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isCharacterDevice()) return 'char'
  if (st.isBlockDevice()) return 'block'
  if (st.isFIFO()) return 'fifo'
  return 'socket'
}

/** Every xattr of a path (values as hex), without following a final symlink. */
export function xattrsOf(p: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of llistxattr(p).sort()) out[name] = lgetxattr(p, name)?.toString('hex') ?? ''
  return out
}

/** The tree under `root`, by relative path (`''` is the root itself). */
export function tree(root: string): Map<string, Node> {
  const out = new Map<string, Node>()
  const walk = (rel: string): void => {
    const p = rel === '' ? root : join(root, rel)
    const st = lstatSync(p)
    const type = typeOf(st)
    const node: Node = {
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: Math.floor(st.mtimeMs / 1000),
      size: type === 'file' ? st.size : 0,
      ino: st.ino,
      nlink: st.nlink,
      xattrs: xattrsOf(p),
    }
    if (type === 'file') node.sha = createHash('sha256').update(readFileSync(p)).digest('hex')
    if (type === 'symlink') node.link = readlinkSync(p)
    if (type === 'char' || type === 'block') node.rdev = st.rdev
    out.set(rel, node)
    if (type === 'dir') for (const name of readdirSync(p).sort()) walk(rel === '' ? name : `${rel}/${name}`)
  }
  walk('')
  return out
}

/** A directory beside the store that no unpack may touch, with a file in it. */
export interface Sentinel {
  dir: string
  /** A file in it (`secret`). */
  file: string
  /** Throws when anything in it changed (names, contents, times, links). */
  assertUnchanged(): void
}

export function makeSentinel(base: string): Sentinel {
  const dir = join(base, 'sentinel')
  mkdirSync(join(dir, 'sub'), { recursive: true })
  const file = join(dir, 'secret')
  writeFileSync(file, 'do not touch\n')
  writeFileSync(join(dir, 'sub', 'passwd'), 'root:x:0:0::/root:/bin/sh\n')
  const snapshot = JSON.stringify([...tree(dir)].map(([k, v]) => [k, { ...v, atime: undefined }]))
  const before = snapshot
  return {
    dir,
    file,
    assertUnchanged(): void {
      const now = JSON.stringify([...tree(dir)].map(([k, v]) => [k, { ...v, atime: undefined }]))
      if (now !== before) throw new Error(`the sentinel directory changed:\nbefore ${before}\nnow    ${now}`)
    },
  }
}

/** Names under `<store>/layers` (layer directories and temporaries). */
export function layerDirs(storeRoot: string): string[] {
  try {
    return readdirSync(join(storeRoot, 'layers')).sort()
  } catch {
    return []
  }
}

/** A fresh `/tmp/ctr-layers-*` directory, and its removal. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync('/tmp/ctr-layers-')
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** How many fds this process has open. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length
}

/** Pids of this process's children whose command is `name` (zombies included). */
export function childrenNamed(name: string): number[] {
  const out: number[] = []
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (comm === name && ppid === process.pid) out.push(Number(pid))
    } catch {
      // gone
    }
  }
  return out
}
