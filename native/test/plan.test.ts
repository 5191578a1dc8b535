/**
 * The native interpreter on its own: plans it must refuse (before anything is cloned), the
 * (phase, index, errno) it reports for a failing child, fd moves that overlap, and the exit
 * watcher. Everything runs against the real kernel.
 */
import fs from 'node:fs'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { Op, Phase, pipe, spawnPlan, watchExit, type SpawnPlan } from '../lib/index.js'

const stdio = [0, 1, 2].map((fd) => ({ source: fd, target: fd }))

function plan(over: Partial<SpawnPlan> = {}): SpawnPlan {
  return {
    cloneFlags: 0,
    joins: [],
    twoStage: false,
    parentWrites: [],
    fds: stdio,
    steps: [],
    exec: { path: 'true', argv: ['true'], env: [], search: '/usr/bin:/bin' },
    ...over,
  }
}

function exitOf(pidfd: number): Promise<{ code: number | null; signal: number | null }> {
  return new Promise((resolve) => watchExit(pidfd, (code, signal) => resolve({ code, signal })))
}

function childrenOfUs(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(process.pid)
      } catch {
        return false
      }
    })
    .map(Number)
}

describe('plans the addon refuses before cloning', () => {
  const cases: [string, unknown, RegExp][] = [
    ['an unknown op', plan({ steps: [{ op: 99 as never }] }), /steps\[0\]\.op is unknown/],
    ['a mount without target', plan({ steps: [{ op: Op.Mount, s: ['proc'], n: [0] }] }), /steps\[0\]\.s\[1\] is required/],
    ['a NUL in argv', plan({ exec: { path: 'true', argv: ['a\0b'], env: [], search: null } }), /exec\.argv\[0\] contains a NUL byte/],
    ['a non-integer flag', plan({ cloneFlags: 1.5 }), /cloneFlags must be an integer/],
    ['too many fds', plan({ fds: Array.from({ length: 65 }, (_, i) => ({ source: 0, target: i })) }), /at most 64/],
    ['a capset blob of the wrong size', plan({ steps: [{ op: Op.CapSet, blob: Buffer.alloc(8) }] }), /6 uint32/],
    ['a NUL in a step string', plan({ steps: [{ op: Op.Chdir, s: ['/'] }, { op: Op.Mkdir, s: ['/tmp/a\0b'], n: [0o755] }] }), /steps\[1\]\.s\[0\] contains a NUL byte/],
    ['a step string that is not a string', plan({ steps: [{ op: Op.Chdir, s: [42 as never] }] }), /steps\[0\]\.s\[0\] must be a string/],
    ['a fractional step number', plan({ steps: [{ op: Op.Umask, n: [0.5] }] }), /steps\[0\]\.n\[0\] must be an integer/],
    ['a blob that is not a Buffer', plan({ steps: [{ op: Op.Seccomp, blob: 'x' as never }] }), /steps\[0\]\.blob must be a Buffer/],
  ]
  it.each(cases)('%s', async (_name, p, message) => {
    const before = childrenOfUs()
    await expect(spawnPlan(p as SpawnPlan)).rejects.toThrow(message)
    await expect(Promise.resolve().then(() => spawnPlan(p as SpawnPlan))).rejects.toBeInstanceOf(TypeError)
    expect(childrenOfUs()).toEqual(before)
  })
})

describe('failures in the child come back as (phase, index, errno)', () => {
  it('a failing step names its index', async () => {
    const err = await spawnPlan(plan({ steps: [{ op: Op.Chdir, s: ['/'] }, { op: Op.Chdir, s: ['/nonexistent-dir'] }] })).catch((e) => e)
    expect(err).toMatchObject({ code: 'ENOENT', phase: Phase.Step, index: 1 })
  })

  it('a bad namespace fd fails in the join phase', async () => {
    const err = await spawnPlan(plan({ joins: [{ fd: 999, nstype: 0 }] })).catch((e) => e)
    expect(err).toMatchObject({ code: 'EBADF', phase: Phase.Join, index: 0 })
  })

  it('a missing program fails in the exec phase after the PATH search', async () => {
    const err = await spawnPlan(plan({ exec: { path: 'no-such-program', argv: ['x'], env: [], search: '/usr/bin:/bin' } })).catch((e) => e)
    expect(err).toMatchObject({ code: 'ENOENT', phase: Phase.Exec })
  })

  it('a parent-side write that fails names the file, and the child is gone', async () => {
    const before = childrenOfUs()
    const err = await spawnPlan(plan({ parentWrites: [{ path: '/nonexistent/{pid}', data: 'x' }] })).catch((e) => e)
    expect(err).toMatchObject({ code: 'ENOENT', phase: Phase.Parent, syscall: 'write' })
    expect(err.path).toMatch(/^\/nonexistent\/\d+$/)
    expect(childrenOfUs()).toEqual(before)
  })
})

describe('packed steps', () => {
  it('every string, number and blob reaches the child intact: multi-byte text, several strings per step, -1 and 64-bit values', async () => {
    const dir = fs.mkdtempSync('/tmp/ctr-plan-pack-')
    try {
      const content = 'grüße, 世界 ✓\n'
      const steps = [
        { op: Op.SetRlimit, n: [7 /* RLIMIT_NOFILE */, 64, 64] },
        { op: Op.Mkdir, s: [`${dir}/dïr`], n: [0o700] },
        { op: Op.Mknod, s: [`${dir}/dïr/file`], n: [0o100644, 0] },
        { op: Op.WriteFile, s: [`${dir}/dïr/file`, content] },
        { op: Op.Symlink, s: ['target → there', `${dir}/link`] },
        { op: Op.CapBsetDrop, n: [BigInt(21)] },
      ]
      const { pidfd } = await spawnPlan(plan({ steps, exec: { path: 'sh', argv: ['sh', '-c', 'ulimit -n > "$0"', `${dir}/limit`], env: [], search: '/usr/bin:/bin' } }))
      expect(await exitOf(pidfd)).toEqual({ code: 0, signal: null })
      expect(fs.readFileSync(`${dir}/dïr/file`, 'utf8')).toBe(content)
      expect(fs.statSync(`${dir}/dïr`).mode & 0o777).toBe(0o700 & ~process.umask())
      expect(fs.readlinkSync(`${dir}/link`)).toBe('target → there')
      expect(fs.readFileSync(`${dir}/limit`, 'utf8').trim()).toBe('64')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('fd moves', () => {
  it('swaps two fds whose sources are each other’s targets', async () => {
    // a → 3 and b → 4, where a is already 4 in the child's numbering and b is 3: a naive
    // dup2 loop would overwrite one before copying it.
    const [r1, w1] = pipe()
    const [r2, w2] = pipe()
    const [outR, outW] = pipe()
    const out = new net.Socket({ fd: outR, readable: true, writable: false })
    const chunks: Buffer[] = []
    out.on('data', (c: Buffer) => chunks.push(c))
    const ended = new Promise((resolve) => out.on('end', resolve))
    const { pidfd } = await spawnPlan(
      plan({
        fds: [{ source: 0, target: 0 }, { source: outW, target: 1 }, { source: 2, target: 2 }, { source: w2, target: 3 }, { source: w1, target: 4 }],
        exec: { path: '/bin/sh', argv: ['sh', '-c', 'echo three >&3; echo four >&4; ls /proc/self/fd'], env: [], search: null },
      }),
    )
    for (const fd of [w1, w2, outW]) fs.closeSync(fd)
    expect(await exitOf(pidfd)).toEqual({ code: 0, signal: null })
    await ended
    expect(fs.readFileSync(r2, 'utf8')).toBe('three\n')
    expect(fs.readFileSync(r1, 'utf8')).toBe('four\n')
    fs.closeSync(r1)
    fs.closeSync(r2)
    // ls itself opens one fd for /proc/self/fd: 0-4 plus that one, nothing else
    const fds = Buffer.concat(chunks).toString().split(/\s+/).filter(Boolean).map(Number)
    expect(fds.filter((f) => f <= 4)).toEqual([0, 1, 2, 3, 4])
    expect(fds.length).toBe(6)
  })
})

describe('exit watcher', () => {
  it('reports the exit code and refuses to signal a reaped child', async () => {
    const { pidfd } = await spawnPlan(plan({ exec: { path: '/bin/sh', argv: ['sh', '-c', 'exit 7'], env: [], search: null } }))
    let watcher!: ReturnType<typeof watchExit>
    const status = await new Promise((resolve) => {
      watcher = watchExit(pidfd, (code, signal) => resolve({ code, signal }))
    })
    expect(status).toEqual({ code: 7, signal: null })
    expect(() => watcher.kill(9)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
  })

  it('reports the signal that killed the child', async () => {
    const { pidfd } = await spawnPlan(plan({ exec: { path: 'sleep', argv: ['sleep', '30'], env: [], search: '/usr/bin:/bin' } }))
    let watcher!: ReturnType<typeof watchExit>
    const done = new Promise((resolve) => {
      watcher = watchExit(pidfd, (code, signal) => resolve({ code, signal }))
    })
    watcher.kill(15)
    expect(await done).toEqual({ code: null, signal: 15 })
  })
})

describe('eventfd watcher', () => {
  it('calls back with the counter each time the eventfd is signalled, until closed', async () => {
    const { eventfd, watchEventfd } = await import('../lib/index.js')
    const fd = eventfd(0, 0o4000 /* EFD_NONBLOCK */)
    const counts: number[] = []
    let wake!: () => void
    let next = new Promise<void>((r) => (wake = r))
    const w = watchEventfd(fd, (c) => {
      counts.push(c)
      wake()
    })
    const signal = (n: bigint) => {
      const b = Buffer.alloc(8)
      b.writeBigUInt64LE(n)
      fs.writeSync(fd, b)
    }
    signal(3n)
    await next
    next = new Promise<void>((r) => (wake = r))
    signal(1n)
    await next
    expect(counts).toEqual([3, 1])
    w.close()
    w.close()
    expect(() => fs.fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  })
})
