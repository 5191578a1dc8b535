/**
 * Fixtures for the snapshot and commit suites: a throwaway store root, layer directories built
 * by hand (so these suites do not depend on the unpacker), tree listings, mount hygiene.
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync, linkSync, lutimesSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { AT_FDCWD, FileType, lgetxattr, llistxattr, lsetxattr, makedev, mknodat, umount2, UmountFlag } from '@ctr/native'
import { StorePaths } from '../../src/paths.js'

/** A store root under /tmp/ctr-snap-*; `cleanup` unmounts whatever is left below it and deletes it. */
export function tempStore(prefix = 'ctr-snap-'): { root: string; paths: StorePaths; cleanup: () => void } {
  const root = mkdtempSync(join('/tmp', prefix))
  return {
    root,
    paths: new StorePaths(root),
    cleanup: () => {
      unmountAllBelow(root)
      rmSync(root, { recursive: true, force: true })
    },
  }
}

/** Mount points at or below `dir` in this mount namespace, from /proc/self/mountinfo. */
export function mountsBelow(dir: string): string[] {
  const out: string[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    if (mp !== undefined && (mp === dir || mp.startsWith(dir + '/'))) out.push(mp)
  }
  return out
}

/** Last-resort cleanup for a test that failed half-way: detach everything below `dir`. */
export function unmountAllBelow(dir: string): void {
  for (let i = 0; i < 1000; i++) {
    const left = mountsBelow(dir)
    if (left.length === 0) return
    const deepest = left.sort((a, b) => b.length - a.length)[0]!
    try {
      umount2(deepest, UmountFlag.DETACH)
    } catch {
      /* gone meanwhile */
    }
  }
}

/** One thing in a layer (or an expected tree). */
export type Node =
  | { path: string; type: 'file'; content?: string; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { path: string; type: 'dir'; mode?: number; uid?: number; gid?: number; opaque?: boolean; mtime?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'whiteout' }
  | { path: string; type: 'fifo' }
  | { path: string; type: 'char'; major: number; minor: number }
  | { path: string; type: 'hardlink'; target: string }

/** A random chain id (`sha256:<64 hex>`). */
export function randomChainId(): string {
  return 'sha256:' + createHash('sha256').update(randomBytes(16)).digest('hex')
}

/** Writes nodes under `dir` (parents are created 0755 as needed), as the unpacker would. */
export function writeNodes(dir: string, nodes: Node[]): void {
  mkdirSync(dir, { recursive: true })
  for (const n of nodes) {
    const p = join(dir, n.path)
    mkdirSync(dirname(p), { recursive: true })
    switch (n.type) {
      case 'file':
        writeFileSync(p, n.content ?? '')
        chmodSync(p, n.mode ?? 0o644)
        if (n.uid !== undefined) lchownSync(p, n.uid, n.gid ?? 0)
        if (n.mtime !== undefined) lutimesSync(p, n.mtime, n.mtime)
        break
      case 'dir':
        mkdirSync(p, { recursive: true })
        chmodSync(p, n.mode ?? 0o755)
        if (n.uid !== undefined) lchownSync(p, n.uid, n.gid ?? 0)
        if (n.opaque) lsetxattr(p, 'trusted.overlay.opaque', Buffer.from('y'))
        break
      case 'symlink':
        symlinkSync(n.target, p)
        break
      case 'whiteout':
        mknodat(AT_FDCWD, p, FileType.S_IFCHR, makedev(0, 0))
        break
      case 'fifo':
        mknodat(AT_FDCWD, p, FileType.S_IFIFO | 0o644, 0)
        break
      case 'char':
        mknodat(AT_FDCWD, p, FileType.S_IFCHR | 0o666, makedev(n.major, n.minor))
        break
      case 'hardlink':
        linkSync(join(dir, n.target), p)
        break
    }
  }
  // Directory mtimes last: writing children changes them.
  for (const n of nodes) {
    if (n.type === 'dir' && n.mtime !== undefined) lutimesSync(join(dir, n.path), n.mtime, n.mtime)
  }
}

/** Makes `layers/<hex>/fs` with the given nodes; returns its chain id. */
export function makeLayer(paths: StorePaths, nodes: Node[], chainId = randomChainId()): string {
  writeNodes(paths.layerFs(chainId), nodes)
  return chainId
}

/**
 * A sorted listing of a directory tree, one line per entry: `path type [detail]`, where
 * detail is a file's content, a link's target, a device's numbers; `opaque` marks opaque dirs
 * and `xattr:name=value` user xattrs. Whiteouts show as `c 0:0`.
 */
export function listTree(dir: string, opts: { modes?: boolean; xattrs?: boolean } = {}): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name
      const p = join(dir, r)
      const st = lstatSync(p)
      const mode = opts.modes ? ` ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}` : ''
      let xa = ''
      if (opts.xattrs) {
        const names = llistxattr(p).filter((x) => !x.startsWith('trusted.overlay.') && x !== 'security.selinux').sort()
        xa = names.map((x) => ` xattr:${x}=${lgetxattr(p, x)?.toString()}`).join('')
      }
      if (st.isDirectory()) {
        const opaque = lgetxattr(p, 'trusted.overlay.opaque')?.toString() === 'y' ? ' opaque' : ''
        out.push(`${r}/ dir${mode}${opaque}${xa}`)
        walk(r)
      } else if (st.isSymbolicLink()) out.push(`${r} -> ${readlinkSync(p)}`)
      else if (st.isFile()) out.push(`${r} file${mode} ${JSON.stringify(readFileSync(p, 'utf8'))}${xa}`)
      else if (st.isCharacterDevice()) out.push(`${r} c ${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff)}${mode}`)
      else if (st.isFIFO()) out.push(`${r} fifo${mode}`)
      else out.push(`${r} other`)
    }
  }
  walk('')
  return out
}

/** Reads a whole file as text (a little shorthand). */
export const text = (p: string): Promise<string> => readFile(p, 'utf8')
