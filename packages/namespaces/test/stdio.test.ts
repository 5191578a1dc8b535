/**
 * stdio, fds given to the child (and nothing else), signals, abort, exit status, env,
 * PATH search and cwd. Host binaries, no root filesystem.
 */
import fs from 'node:fs'
import path from 'node:path'
import tty from 'node:tty'
import { close, openpty, setWinsize } from '@ctr/native'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { readText, SpawnError } from '../src/index.js'
import { fdNumbers, parseFdListing, reap, run, safeRm, start, startHelper, tempDir, withChild, type NsChild } from './helpers/util.js'

let dir: string
beforeAll(() => {
  dir = tempDir()
})
afterAll(async () => {
  await safeRm(dir)
})

const LS_FD = ['/bin/busybox', 'ls', '-l', '/proc/self/fd']

describe('stdio', () => {
  it("'pipe' stdin: cat echoes what we write, also in large amounts", async () => {
    const child = await start({ argv: ['/bin/cat'], stdio: ['pipe', 'pipe', 'pipe'] })
    try {
      const payload = 'hello\n' + 'x'.repeat(512 * 1024) + '\nbye\n'
      const out = readText(child.stdout)
      child.stdin!.write(payload.slice(0, 100))
      child.stdin!.end(payload.slice(100))
      expect(await out).toBe(payload)
      expect(await child.exited).toEqual({ code: 0, signal: null })
    } finally {
      await reap(child)
    }
  })

  it("'pipe' stdout and stderr are separate streams", async () => {
    const r = await run({ argv: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'] })
    expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3, signal: null })
  })

  it("streams are null unless 'pipe'", async () => {
    await withChild({ argv: ['/bin/true'], stdio: ['ignore', 'ignore', 'ignore'] }, async (child) => {
      expect(child.stdin).toBeNull()
      expect(child.stdout).toBeNull()
      expect(child.stderr).toBeNull()
      await child.exited
    })
  })

  it("'ignore' gives /dev/null", async () => {
    await withChild({ argv: ['/bin/sleep', '5'], stdio: ['ignore', 'ignore', 'ignore'] }, async (child) => {
      for (const fd of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${child.pid}/fd/${fd}`), `fd ${fd}`).toBe('/dev/null')
    })
  })

  it("'inherit' passes our own fd, 'pipe' a pipe", async () => {
    await withChild({ argv: ['/bin/sleep', '5'], stdio: ['pipe', 'inherit', 'inherit'] }, async (child) => {
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/0`)).toMatch(/^pipe:\[\d+\]$/)
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/1`)).toBe(fs.readlinkSync('/proc/self/fd/1'))
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/2`)).toBe(fs.readlinkSync('/proc/self/fd/2'))
      child.stdin!.end()
    })
  })

  it('the default stdio is ignore, inherit, inherit', async () => {
    await withChild({ argv: ['/bin/sleep', '5'] }, async (child) => {
      expect(child.stdin).toBeNull()
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/0`)).toBe('/dev/null')
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/1`)).toBe(fs.readlinkSync('/proc/self/fd/1'))
      expect(fs.readlinkSync(`/proc/${child.pid}/fd/2`)).toBe(fs.readlinkSync('/proc/self/fd/2'))
    })
  })

  it('a number passes that parent fd as the stdio fd', async () => {
    const file = path.join(dir, 'out.txt')
    const fd = fs.openSync(file, 'w')
    try {
      const r = await run({ argv: ['/bin/sh', '-c', 'echo into-file'], stdio: ['ignore', fd, 'pipe'] })
      expect(r.code).toBe(0)
    } finally {
      fs.closeSync(fd)
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('into-file\n')
  })
})

describe('fds', () => {
  it("the child holds only 0-2 when no fds are given (ls's own directory fd aside)", async () => {
    // open some fds of our own that must not reach the child
    const mine = [fs.openSync(path.join(dir, 'a'), 'w'), fs.openSync(path.join(dir, 'b'), 'w')]
    try {
      const r = await run({ argv: LS_FD })
      expect(r.code, r.stderr).toBe(0)
      expect(fdNumbers(parseFdListing(r.stdout))).toEqual([0, 1, 2])
    } finally {
      mine.forEach((fd) => fs.closeSync(fd))
    }
  })

  it('fds: [...] become 3, 4, … in the child, nothing else leaks', async () => {
    const fa = path.join(dir, 'fd-a')
    const fb = path.join(dir, 'fd-b')
    const a = fs.openSync(fa, 'w')
    const b = fs.openSync(fb, 'w')
    const other = fs.openSync(path.join(dir, 'fd-other'), 'w')
    try {
      const r = await run({ argv: LS_FD, fds: [b, a] })
      expect(r.code, r.stderr).toBe(0)
      const fds = parseFdListing(r.stdout)
      expect(fdNumbers(fds)).toEqual([0, 1, 2, 3, 4])
      expect(fds.get(3)).toBe(fb)
      expect(fds.get(4)).toBe(fa)
    } finally {
      ;[a, b, other].forEach((fd) => fs.closeSync(fd))
    }
  })

  it('a passed fd is usable: the child writes to fd 3', async () => {
    const file = path.join(dir, 'fd3.txt')
    const fd = fs.openSync(file, 'w')
    try {
      const r = await run({ argv: ['/bin/sh', '-c', 'echo via-fd3 >&3'], fds: [fd] })
      expect(r.code, r.stderr).toBe(0)
    } finally {
      fs.closeSync(fd)
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('via-fd3\n')
  })

  /**
   * Node marks the low fds it inherits close-on-exec at startup, so the helper is started
   * through bash (dash only knows fds 0-9) that moves our two extra pipes to fds 50 and 51
   * (dup2: no CLOEXEC).
   */
  function fdHelper(extra: number[]) {
    return startHelper('fd-inherit.mjs', [inject('nsEntry'), JSON.stringify(extra)], ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], {
      shell: 'exec "$0" "$@" 50<&3 51<&4 3<&- 4<&-',
    })
  }

  it('inherited fds WITHOUT O_CLOEXEC do not reach the child', async () => {
    const h = fdHelper([])
    const ex = await h.exited
    expect(ex, h.stderr()).toEqual({ code: 0, signal: null })
    const report = JSON.parse(h.stdout()) as {
      parent: Record<string, { target: string; cloexec: boolean }>
      stdout: string
      stderr: string
      exit: { code: number }
    }
    // precondition: the helper really holds fds 50 and 51 without CLOEXEC
    expect(report.parent['50']?.cloexec).toBe(false)
    expect(report.parent['51']?.cloexec).toBe(false)
    expect(report.exit.code, report.stderr).toBe(0)
    expect(fdNumbers(parseFdListing(report.stdout))).toEqual([0, 1, 2])
  })

  it('an inherited non-CLOEXEC fd passed explicitly arrives as 3, the other one does not', async () => {
    const h = fdHelper([51])
    const ex = await h.exited
    expect(ex, h.stderr()).toEqual({ code: 0, signal: null })
    const report = JSON.parse(h.stdout()) as { parent: Record<string, { target: string }>; stdout: string; stderr: string }
    const fds = parseFdListing(report.stdout)
    expect(fdNumbers(fds), report.stderr).toEqual([0, 1, 2, 3])
    expect(fds.get(3)).toBe(report.parent['51']?.target)
    expect(report.parent['51']?.target).not.toBe(report.parent['50']?.target)
  })
})

describe('exit status, kill and abort', () => {
  it('reports the exit code', async () => {
    const r = await run({ argv: ['/bin/sh', '-c', 'exit 42'] })
    expect(r).toMatchObject({ code: 42, signal: null })
  })

  it('spawn resolves once the program really runs (exe is the program)', async () => {
    await withChild({ argv: ['/bin/sleep', '5'] }, async (child) => {
      expect(fs.readlinkSync(`/proc/${child.pid}/exe`)).toMatch(/\/sleep$/)
      expect(fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8')).toBe('/bin/sleep\0' + '5\0')
    })
  })

  it("kill() sends SIGTERM by default; exited reports signal 'SIGTERM'; kill() is false afterwards", async () => {
    const child = await start({ argv: ['/bin/sleep', '10'] })
    try {
      expect(child.kill()).toBe(true)
      expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' })
      expect(child.kill()).toBe(false)
      expect(child.kill('SIGKILL')).toBe(false)
    } finally {
      await reap(child)
    }
  })

  it('kill() accepts a signal number', async () => {
    const child = await start({ argv: ['/bin/sleep', '10'] })
    try {
      expect(child.kill(9)).toBe(true)
      expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' })
    } finally {
      await reap(child)
    }
  })

  it('kill() works on a pid-namespace init (SIGKILL from the parent namespace)', async () => {
    const child = await start({ argv: ['/bin/sleep', '10'], namespaces: ['pid'] })
    try {
      expect(child.kill('SIGKILL')).toBe(true)
      expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' })
    } finally {
      await reap(child)
    }
  })

  it('an AbortSignal kills a running child with SIGKILL', async () => {
    const ac = new AbortController()
    let child: NsChild | undefined
    try {
      child = await start({ argv: ['/bin/sleep', '10'], signal: ac.signal })
      const pid = child.pid
      ac.abort()
      expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' })
      expect(fs.existsSync(`/proc/${pid}`) && fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes('(sleep)')).toBe(false)
    } finally {
      await reap(child)
    }
  })

  it('an already aborted signal never lets the program run on', async () => {
    const ac = new AbortController()
    ac.abort()
    // either spawn rejects (nothing created), or the child is killed at once
    const child = await start({ argv: ['/bin/sleep', '10'], signal: ac.signal }).catch(() => undefined)
    if (child) expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' })
  })
})

describe('env, PATH and cwd', () => {
  it('the default env is only PATH, not process.env', async () => {
    const r = await run({ argv: ['/usr/bin/env'] })
    expect(r.stdout).toBe('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n')
  })

  it('env replaces the environment', async () => {
    const r = await run({ argv: ['/usr/bin/env'], env: { FOO: 'bar baz', PATH: '/bin' } })
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['FOO=bar baz', 'PATH=/bin'])
  })

  it('argv[0] without a slash is searched in env.PATH', async () => {
    const r = await run({ argv: ['echo', 'found'] })
    expect(r).toMatchObject({ code: 0, stdout: 'found\n' })
    const e = await run({ argv: ['env'], env: { PATH: `${dir}:/usr/bin` } })
    expect(e.stdout).toBe(`PATH=${dir}:/usr/bin\n`)
  })

  it('argv[0] not found in env.PATH rejects with ENOENT', async () => {
    const err = await start({ argv: ['echo'], env: { PATH: path.join(dir, 'nothing-here') } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
  })

  it('cwd sets the working directory', async () => {
    const r = await run({ argv: ['/bin/pwd'], cwd: dir })
    expect(r.stdout).toBe(dir + '\n')
  })

  it('a missing cwd rejects with ENOENT naming the directory', async () => {
    const missing = path.join(dir, 'no-such-dir')
    const err = await start({ argv: ['/bin/pwd'], cwd: missing }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('ENOENT')
    expect((err as SpawnError).step).toContain(missing)
  })

  it('readText collects a whole stream', async () => {
    const child = await start({ argv: ['/bin/sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" a'], stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const text = await readText(child.stdout)
      expect(text.length).toBe(1_000_000)
      expect(text).toMatch(/^a+$/)
    } finally {
      await reap(child)
    }
  })
})

describe('a pseudo-terminal as stdio', () => {
  it('the child sees the pty as its controlling terminal, with the size we set', async () => {
    const pty = openpty()
    try {
      setWinsize(pty.master, 101, 33)
      const child = await start({
        argv: ['/bin/sh', '-c', 'tty; stty size'],
        stdio: [pty.slave, pty.slave, pty.slave],
        controllingTerminal: 0,
      })
      close(pty.slave)
      const out: Buffer[] = []
      const master = new tty.ReadStream(pty.master)
      master.on('data', (b: Buffer) => out.push(b))
      master.on('error', () => {}) // EIO once the last slave closes
      await child.exited
      await new Promise((r) => setTimeout(r, 50))
      master.destroy()
      const text = Buffer.concat(out).toString()
      expect(text).toContain(pty.path)
      expect(text).toContain('33 101')
    } catch (err) {
      try { close(pty.master) } catch { /* already closed by the stream */ }
      throw err
    }
  })
})
