/**
 * The mount-namespace setup of a root filesystem: pivot_root into a busybox rootfs, /proc,
 * /dev, /sys, masked and read-only paths, a read-only root, bind and tmpfs mounts.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { busyboxRootfs } from '@ctr/fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { namespaceId } from '../src/index.js'
import { numericEntries, run, safeRm, start, tempDir, type SpawnOpts } from './helpers/util.js'

type RootfsOpts = NonNullable<SpawnOpts['rootfs']>

let dir: string
let root: string
let hostData: string

beforeAll(async () => {
  dir = tempDir()
  root = await busyboxRootfs(path.join(dir, 'rootfs'))
  fs.writeFileSync(path.join(root, '.marker'), 'marker-content\n')
  fs.mkdirSync(path.join(root, 'masked-dir'))
  fs.writeFileSync(path.join(root, 'masked-dir', 'secret'), 'secret\n')
  hostData = path.join(dir, 'data')
  fs.mkdirSync(hostData)
  fs.writeFileSync(path.join(hostData, 'hello.txt'), 'hello from the host\n')
})

afterAll(async () => {
  await safeRm(dir)
})

/** Runs `sh -c script` in the rootfs with new mnt+pid namespaces. */
function box(script: string, extra: Partial<SpawnOpts> = {}, rootfs: Partial<RootfsOpts> = {}) {
  return run({
    argv: ['/bin/sh', '-c', script],
    namespaces: ['mnt', 'pid'],
    ...extra,
    rootfs: { path: root, ...rootfs },
  })
}

interface MountEntry {
  source: string
  type: string
  opts: string[]
}

/** /proc/mounts text -> mount point -> the topmost entry. */
function parseMounts(text: string): Map<string, MountEntry> {
  const m = new Map<string, MountEntry>()
  for (const line of text.split('\n').filter(Boolean)) {
    const [source = '', target = '', type = '', opts = ''] = line.split(' ')
    m.set(target.replace(/\\040/g, ' '), { source, type, opts: opts.split(',') })
  }
  return m
}

async function containerMounts(extra: Partial<SpawnOpts> = {}, rootfs: Partial<RootfsOpts> = {}) {
  const r = await box('cat /proc/mounts', extra, rootfs)
  expect(r.code, r.stderr).toBe(0)
  return parseMounts(r.stdout)
}

describe('root filesystem', () => {
  it('pivots into the rootfs: its files are at /, the host tree is gone', async () => {
    const hostOnly = path.dirname(fileURLToPath(import.meta.url))
    const r = await box(`cat /.marker; test -e ${hostOnly} && echo host-visible || echo host-absent; readlink /proc/self/exe`)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('marker-content\nhost-absent\n/bin/busybox\n')
  })

  it('no mount of the host tree is left inside (old root detached)', async () => {
    const r = await box('cat /proc/self/mountinfo')
    expect(r.code, r.stderr).toBe(0)
    const points = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ')[4] ?? '')
    expect(points).toContain('/')
    const outside = points.filter((p) => p !== '/' && !/^\/(proc|dev|sys)(\/|$)/.test(p))
    expect(outside).toEqual([])
  })

  it('argv[0] is searched in PATH inside the new root', async () => {
    const r = await run({ argv: ['readlink', '/proc/self/exe'], namespaces: ['mnt'], rootfs: { path: root } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('/bin/busybox\n')
  })

  it('cwd is a path inside the new root', async () => {
    const r = await run({ argv: ['pwd'], namespaces: ['mnt'], rootfs: { path: root }, cwd: '/etc' })
    expect(r.stdout).toBe('/etc\n')
  })

  it('does not change the mount namespace of the caller', async () => {
    const before = await namespaceId('self', 'mnt')
    await box('true')
    expect(await namespaceId('self', 'mnt')).toBe(before)
    expect(fs.readdirSync(path.join(root, 'proc'))).toEqual([])
    expect(fs.readdirSync(path.join(root, 'sys'))).toEqual([])
  })
})

describe('/proc', () => {
  it('is a proc mount', async () => {
    const mounts = await containerMounts()
    expect(mounts.get('/proc')?.type).toBe('proc')
  })

  it('with a pid namespace, lists only the processes created inside', async () => {
    // `; true` keeps sh alive as pid 1 while ls runs as pid 2
    const r = await box('ls /proc; true')
    expect(r.code, r.stderr).toBe(0)
    expect(numericEntries(r.stdout)).toEqual([1, 2])
  })

  it('ps shows sh as pid 1', async () => {
    const r = await box('ps -o pid,comm; true')
    expect(r.code, r.stderr).toBe(0)
    const rows = r.stdout
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
    expect(rows).toEqual([
      ['1', 'sh'],
      ['2', 'ps'],
    ])
  })
})

describe('/dev', () => {
  it('has the standard character devices with the right numbers', async () => {
    const r = await box('for d in null zero full random urandom tty; do stat -c "%n %F %t:%T" /dev/$d; done')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().split('\n')).toEqual([
      '/dev/null character special file 1:3',
      '/dev/zero character special file 1:5',
      '/dev/full character special file 1:7',
      '/dev/random character special file 1:8',
      '/dev/urandom character special file 1:9',
      '/dev/tty character special file 5:0',
    ])
  })

  it('the devices work: null swallows, zero gives zeros, full is full', async () => {
    const r = await box('echo x > /dev/null && echo null-ok; head -c 4 /dev/zero | od -An -tx1; echo x > /dev/full')
    expect(r.stdout.replace(/[ \t]+/g, ' ')).toBe('null-ok\n 00 00 00 00\n')
    expect(r.stderr).toMatch(/No space left on device/)
  })

  it('has /dev/ptmx and a devpts /dev/pts', async () => {
    const r = await box('stat -c "%F %t:%T" /dev/ptmx; readlink /dev/ptmx; ls /dev/pts; true')
    const lines = r.stdout.trim().split('\n')
    // either the ptmx device node or a symlink to pts/ptmx (as runc does)
    const ptmxOk = lines[0] === 'character special file 5:2' || (lines[0] === 'symbolic link 0:0' && lines[1] === 'pts/ptmx') || lines[0] === 'symbolic link'
    expect(ptmxOk, r.stdout).toBe(true)
    expect(r.stdout).toMatch(/^ptmx$/m)
    const mounts = await containerMounts()
    expect(mounts.get('/dev/pts')?.type).toBe('devpts')
  })

  it('has a tmpfs /dev/shm and the /dev/fd symlink', async () => {
    const mounts = await containerMounts()
    expect(mounts.get('/dev/shm')?.type).toBe('tmpfs')
    const r = await box('readlink /dev/fd; ls /dev/fd/ >/dev/null && echo fd-ok')
    expect(r.stdout).toBe('/proc/self/fd\nfd-ok\n')
  })

  it('does not expose host devices such as disks', async () => {
    const host = fs.readdirSync('/dev').filter((d) => /^(vd|sd|nvme|loop)/.test(d))
    const r = await box('ls /dev')
    const inside = r.stdout.split(/\s+/).filter((d) => /^(vd|sd|nvme|loop)/.test(d))
    expect(inside).toEqual([])
    expect(host.length).toBeGreaterThan(0)
  })
})

describe('/sys', () => {
  it('is a read-only sysfs', async () => {
    const mounts = await containerMounts()
    expect(mounts.get('/sys')?.type).toBe('sysfs')
    expect(mounts.get('/sys')?.opts).toContain('ro')
    const r = await box('touch /sys/x')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Read-only file system/)
  })

  it('with a new net namespace, /sys/class/net shows only lo', async () => {
    const r = await box('ls /sys/class/net', { namespaces: ['mnt', 'pid', 'net'] })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.split(/\s+/).filter(Boolean)).toEqual(['lo'])
  })
})

describe('masked and read-only paths', () => {
  it('masks /proc/keys, /proc/timer_list, /sys/firmware (and /proc/kcore) by default', async () => {
    // the host has content there, or this test would prove nothing
    expect(fs.readFileSync('/proc/keys', 'utf8').length + fs.readFileSync('/proc/timer_list', 'utf8').length).toBeGreaterThan(0)
    expect(fs.readdirSync('/sys/firmware').length).toBeGreaterThan(0)
    const hasKcore = fs.existsSync('/proc/kcore') // not every kernel has it (CONFIG_PROC_KCORE)
    const r = await box(`cat /proc/keys /proc/timer_list | wc -c; ls -A /sys/firmware | wc -l${hasKcore ? '; stat -c %s /proc/kcore' : ''}`)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout.trim().split(/\s+/)).toEqual(hasKcore ? ['0', '0', '0'] : ['0', '0'])
  })

  it('makes /proc/sys read-only by default', async () => {
    const r = await box('echo evil > /proc/sys/kernel/hostname', { namespaces: ['mnt', 'pid', 'uts'] })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Read-only file system/)
    const mounts = await containerMounts()
    expect(mounts.get('/proc/sys')?.opts).toContain('ro')
  })

  it('masks the given files and directories', async () => {
    const r = await box('cat /etc/group; ls -A /masked-dir | wc -l', {}, { maskedPaths: ['/etc/group', '/masked-dir'] })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim()).toBe('0')
    // the host files are untouched
    expect(fs.readFileSync(path.join(root, 'masked-dir', 'secret'), 'utf8')).toBe('secret\n')
  })

  it('makes the given paths read-only, the rest stays writable', async () => {
    const r = await box('touch /etc/x; touch /tmp/ok && echo tmp-ok; rm -f /tmp/ok', {}, { readonlyPaths: ['/etc'] })
    expect(r.stderr).toMatch(/Read-only file system/)
    expect(r.stdout).toBe('tmp-ok\n')
    expect(fs.existsSync(path.join(root, 'etc', 'x'))).toBe(false)
  })
})

describe('readonly root', () => {
  it('readonly: true makes / read-only', async () => {
    const r = await box('touch /x', {}, { readonly: true })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Read-only file system/)
    expect(fs.existsSync(path.join(root, 'x'))).toBe(false)
    const mounts = await containerMounts({}, { readonly: true })
    expect(mounts.get('/')?.opts).toContain('ro')
  })

  it('a tmpfs mount stays writable under a read-only root', async () => {
    const r = await box('echo data > /tmp/f && cat /tmp/f', {}, { readonly: true, mounts: [{ type: 'tmpfs', target: '/tmp' }] })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('data\n')
    expect(fs.existsSync(path.join(root, 'tmp', 'f'))).toBe(false)
  })
})

describe('extra mounts', () => {
  it('a bind mount shows the host directory, and writes reach the host', async () => {
    const r = await box('cat /data/hello.txt && echo inside > /data/written', {}, {
      mounts: [{ type: 'bind', source: hostData, target: '/data' }],
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('hello from the host\n')
    expect(fs.readFileSync(path.join(hostData, 'written'), 'utf8')).toBe('inside\n')
    fs.rmSync(path.join(hostData, 'written'))
  })

  it('a readonly bind mount is readable and not writable', async () => {
    const r = await box('cat /ro/hello.txt; touch /ro/new', {}, {
      mounts: [{ type: 'bind', source: hostData, target: '/ro', readonly: true }],
    })
    expect(r.stdout).toBe('hello from the host\n')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Read-only file system/)
    expect(fs.existsSync(path.join(hostData, 'new'))).toBe(false)
  })

  it('a single file can be bind-mounted', async () => {
    const r = await box('cat /etc/hello.txt', {}, {
      mounts: [{ type: 'bind', source: path.join(hostData, 'hello.txt'), target: '/etc/hello.txt' }],
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('hello from the host\n')
  })

  it('a tmpfs mount is present with its size and mode, and private to the container', async () => {
    const mounts = await containerMounts({}, { mounts: [{ type: 'tmpfs', target: '/scratch', size: '1m', mode: 0o700 }] })
    const m = mounts.get('/scratch')
    expect(m?.type).toBe('tmpfs')
    expect(m?.opts).toContain('size=1024k')
    expect(m?.opts).toContain('mode=700')
    const r = await box('echo x > /scratch/f && cat /scratch/f', {}, { mounts: [{ type: 'tmpfs', target: '/scratch' }] })
    expect(r.stdout).toBe('x\n')
    expect(fs.existsSync(path.join(root, 'scratch', 'f'))).toBe(false)
  })

  it('a readonly tmpfs is not writable', async () => {
    const r = await box('touch /scratch/f', {}, { mounts: [{ type: 'tmpfs', target: '/scratch', readonly: true }] })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Read-only file system/)
  })
})

describe('a root file system mounted in the child', () => {
  it('an overlay over the rootfs, with relative lower paths, is the root and is gone with the namespace', async () => {
    const base = path.join(dir, 'ovl')
    for (const d of ['l', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(base, d), { recursive: true })
    fs.symlinkSync(root, path.join(base, 'l', 'bb'))
    fs.mkdirSync(path.join(base, 'l', 'top'))
    fs.writeFileSync(path.join(base, 'l', 'top', 'from-top'), 'top layer\n')
    const r = await run({
      argv: ['/bin/sh', '-c', 'cat /from-top; echo new > /written; grep " / " /proc/mounts | cut -d" " -f3'],
      namespaces: ['mnt', 'pid'],
      rootfs: {
        path: path.join(base, 'merged'),
        filesystem: {
          type: 'overlay', cwd: path.join(base, 'l'),
          data: `lowerdir=top:bb,upperdir=${base}/upper,workdir=${base}/work`,
        },
      },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('top layer\noverlay\n')
    expect(fs.readFileSync(path.join(base, 'upper', 'written'), 'utf8')).toBe('new\n')
    expect(fs.existsSync(path.join(root, 'written'))).toBe(false)
    // Only the child's mount namespace had it.
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(path.join(base, 'merged'))
    expect(fs.readdirSync(path.join(base, 'merged'))).toEqual([])
  })

  it.each([
    ['an absolute link', (hostDir: string) => hostDir],
    ['a relative link that climbs with ..', (hostDir: string) => `../../../../../../../../..${hostDir}`],
  ])('a mount target behind %s in the image resolves inside the root: nothing is made or mounted on the host', async (_label, linkTo) => {
    // /etc in the top layer is a link to a directory that exists on the host (and, under the
    // same name, in the image). The host sees only the empty mount point, so only the child
    // can resolve it — inside the root.
    const base = fs.mkdtempSync(path.join(dir, 'esc-'))
    const hostDir = fs.mkdtempSync(path.join(dir, 'host-target-'))
    for (const d of ['l', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(base, d), { recursive: true })
    fs.symlinkSync(root, path.join(base, 'l', 'bb'))
    fs.mkdirSync(path.join(base, 'l', 'top', hostDir), { recursive: true })
    fs.symlinkSync(linkTo(hostDir), path.join(base, 'l', 'top', 'etc'))
    const r = await run({
      argv: ['/bin/sh', '-c', 'cat /etc/hostname; ls /etc; grep -c "/sub/data tmpfs" /proc/mounts'],
      namespaces: ['mnt', 'pid'],
      rootfs: {
        path: path.join(base, 'merged'),
        filesystem: { type: 'overlay', cwd: path.join(base, 'l'), data: `lowerdir=top:bb,upperdir=${base}/upper,workdir=${base}/work` },
        mounts: [
          { type: 'bind', source: path.join(hostData, 'hello.txt'), target: '/etc/hostname' },
          { type: 'tmpfs', target: '/etc/sub/data' },
        ],
      },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('hello from the host\nhostname\nsub\n1\n')
    expect(fs.readdirSync(hostDir)).toEqual([])
    // Made in the container's own upper directory, under the link's target inside the root.
    expect(fs.readdirSync(path.join(base, 'upper', hostDir)).sort()).toEqual(['hostname', 'sub'])
  })

  it('a failing root mount names the file system and target', async () => {
    const target = path.join(dir, 'empty-target')
    fs.mkdirSync(target, { recursive: true })
    await expect(run({
      argv: ['/bin/true'], namespaces: ['mnt'],
      rootfs: { path: target, filesystem: { type: 'overlay', data: 'lowerdir=/nonexistent-ctr-lower' } },
    })).rejects.toMatchObject({ code: 'ENOENT', step: `mount overlay on ${target}` })
  })
})

describe('seccomp', () => {
  // A classic-BPF program: EPERM for mkdir and mkdirat, allow everything else (x86_64 and
  // aarch64 numbers; another architecture is allowed through).
  function denyMkdir(): Buffer {
    const ins: [number, number, number, number][] = []
    const LD_ABS = 0x20, JEQ = 0x15, RET = 0x06
    const arch = process.arch === 'arm64' ? 0xc00000b7 : 0xc000003e
    const nrs = process.arch === 'arm64' ? [34, 34] : [83, 258]
    ins.push([LD_ABS, 0, 0, 4])                 // A = arch
    ins.push([JEQ, 0, 4, arch])                 // foreign arch → allow
    ins.push([LD_ABS, 0, 0, 0])                 // A = nr
    ins.push([JEQ, 2, 0, nrs[0]!])
    ins.push([JEQ, 1, 0, nrs[1]!])
    ins.push([RET, 0, 0, 0x7fff0000])           // allow
    ins.push([RET, 0, 0, 0x00050000 | 1])       // errno EPERM
    const b = Buffer.alloc(ins.length * 8)
    ins.forEach(([code, jt, jf, k], i) => { b.writeUInt16LE(code, i * 8); b.writeUInt8(jt, i * 8 + 2); b.writeUInt8(jf, i * 8 + 3); b.writeUInt32LE(k >>> 0, i * 8 + 4) })
    return b
  }

  it('a loaded filter makes the denied syscall fail with EPERM and leaves the rest working', async () => {
    const r = await box('mkdir /tmp/x; echo rc=$?; echo still-running', { noNewPrivileges: true, seccomp: { filter: denyMkdir() } })
    expect(r.stdout).toBe('rc=1\nstill-running\n')
    expect(r.stderr).toMatch(/Operation not permitted/)
    const without = await box('mkdir /tmp/y && echo made; rmdir /tmp/y', {})
    expect(without.stdout).toBe('made\n')
  })

  it('a malformed filter is refused before anything starts, naming the field', async () => {
    await expect(run({ argv: ['/bin/true'], seccomp: { filter: Buffer.alloc(7) } }))
      .rejects.toMatchObject({ code: 'ERR_CTR_INVALID_OPTIONS', field: 'seccomp.filter' })
  })
})

describe('the mount namespace after the exit', () => {
  /** Our fds that are open on a mount namespace, as their `mnt:[inode]` link text. */
  function heldMountNamespaces(): string[] {
    const out: string[] = []
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      try {
        const link = fs.readlinkSync(`/proc/self/fd/${fd}`)
        if (link.startsWith('mnt:[')) out.push(link)
      } catch {
        // closed since the listing
      }
    }
    return out
  }

  it('is held while the child runs and released once its exit is reported', async () => {
    const before = heldMountNamespaces()
    const child = await start({ argv: ['/bin/sh', '-c', 'read x'], namespaces: ['mnt', 'pid'], rootfs: { path: root }, stdio: ['pipe', 'ignore', 'ignore'] })
    // Held: the spawn opened the child's own namespace (so its exit does not unmount it all).
    const childNs = fs.readlinkSync(`/proc/${child.pid}/ns/mnt`)
    expect(childNs).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'))
    expect(heldMountNamespaces().filter((l) => l === childNs)).toHaveLength(1)
    child.stdin!.end('\n')
    expect(await child.exited).toEqual({ code: 0, signal: null })
    // Released right after, on a thread-pool thread: no fd left behind.
    for (let i = 0; i < 100 && heldMountNamespaces().length > before.length; i++) await new Promise((r) => setTimeout(r, 10))
    expect(heldMountNamespaces()).toEqual(before)
  })

  it('is not held for a child that shares ours', async () => {
    const before = heldMountNamespaces()
    const child = await start({ argv: ['/bin/sh', '-c', 'read x'], namespaces: ['pid'], stdio: ['pipe', 'ignore', 'ignore'] })
    expect(heldMountNamespaces()).toEqual(before)
    child.stdin!.end('\n')
    await child.exited
  })
})
