/**
 * `ctr run -it` and `ctr exec -it` on a real pseudo-terminal: the test holds the master of a
 * pty from `@ctr/native`'s openpty, and `ctr` runs on its slave as the controlling terminal
 * of its own session (util-linux `setsid --ctty`), as in a terminal emulator. Checked: the
 * container gets a TTY of its own, keys reach it raw (^C interrupts the container's
 * foreground job, not ctr), the window size follows SIGWINCH, and the host terminal's
 * settings are restored on exit.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { ReadStream } from 'node:tty'
import { close, openpty, setWinsize } from '@ctr/native'
import { pushFixtures, sharedFixtures, startRegistry, type Registry } from '@ctr/registry-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, makeCliEnv, runCmd, type CliEnv } from './helpers/cli-env.js'

let env: CliEnv
let registry: Registry | undefined

beforeAll(async () => {
  env = await makeCliEnv()
  // The image is imported once, outside the terminal sessions.
  await env.ok(['run', '--rm', env.image, 'true'])
})

afterAll(async () => {
  await registry?.stop()
  if (!env) return
  const left = await env.dispose()
  expect(left, 'left behind by the tty tests').toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
})

interface Session {
  child: ChildProcess
  ttyPath: string
  output: () => string
  /** Resolves once the output (since `from`) matches. */
  waitFor: (re: RegExp, from?: number, timeoutMs?: number) => Promise<string>
  write: (s: string) => void
  resize: (columns: number, rows: number) => void
  exited: Promise<number | null>
  dispose: () => void
}

/** Starts `ctr <args>` on the slave of a new pty, as the controlling terminal of its session. */
function session(args: string[], size = { columns: 80, rows: 24 }): Session {
  const pty = openpty()
  setWinsize(pty.master, size.columns, size.rows)
  const child = spawn('setsid', ['--ctty', process.execPath, ...env.argv(args)], { stdio: [pty.slave, pty.slave, pty.slave], env: { ...process.env, TERM: 'xterm' } })
  close(pty.slave)
  // A slave fd of our own keeps the pty (and its settings) alive after ctr exits: the master
  // then never reads EIO, which would make Node close it.
  const keep = fs.openSync(pty.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY)
  const input = new ReadStream(pty.master)
  input.on('error', () => {}) // EIO once ctr and its children closed the slave
  let text = ''
  input.on('data', (d: Buffer) => (text += d.toString('utf8')))
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  return {
    child,
    ttyPath: pty.path,
    output: () => text,
    waitFor: (re, from = 0, timeoutMs = 20_000) => eventually(() => (re.test(text.slice(from)) ? text.slice(from) : ''), timeoutMs, () => `${re} in ${JSON.stringify(text.slice(from))}`),
    write: (s) => fs.writeSync(pty.master, s),
    resize: (c, r) => setWinsize(pty.master, c, r),
    exited,
    dispose: () => {
      fs.closeSync(keep)
      input.destroy()
      if (child.exitCode === null) child.kill('SIGKILL')
    },
  }
}

/** busybox sh's prompt, maybe followed by its terminal queries (`ESC[6n`, `ESC[J`). */
const PROMPT = /# (?:\x1b\[[0-9;]*[A-Za-z])*$/
const AFTER = (re: RegExp) => new RegExp(`${re.source}[\\s\\S]*${PROMPT.source}`)

/** `stty -g` of a terminal device: its settings in a comparable form. */
async function sttyState(ttyPath: string): Promise<string> {
  const r = await runCmd('stty', ['-g', '-F', ttyPath])
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim()
}

async function sttyAll(ttyPath: string): Promise<string> {
  return (await runCmd('stty', ['-a', '-F', ttyPath])).stdout
}

describe('ctr run -it', () => {
  it('gives the container a terminal of its own, raw keys, the window size, and restores the host terminal', async () => {
    const s = session(['run', '-it', '--rm', env.image, 'sh'], { columns: 100, rows: 30 })
    try {
      const initial = await sttyState(s.ttyPath)
      await s.waitFor(PROMPT)
      // While ctr runs the host terminal is raw: no echo, no line editing, no signals from keys.
      const during = await sttyAll(s.ttyPath)
      expect(during).toMatch(/-icanon/)
      expect(during).toMatch(/-echo\b/)
      expect(during).toMatch(/-isig/)

      let mark = s.output().length
      s.write('tty; stty size; echo $((6*7))\r')
      const out = await s.waitFor(AFTER(/42\r*\n/), mark)
      expect(out).toMatch(/^\/dev\/console\r*$/m) // the container's own terminal, bound on /dev/console as runc does
      expect(out).toMatch(/^30 100\r*$/m)

      // SIGWINCH: the new size reaches the container's terminal.
      s.resize(132, 43)
      await new Promise((r) => setTimeout(r, 300))
      mark = s.output().length
      s.write('stty size\r')
      expect(await s.waitFor(/^43 132\r*$/m, mark)).toBeTruthy()

      // ^C is a key for the container (its shell's foreground job stops), not a signal to ctr.
      mark = s.output().length
      s.write('sleep 30\r')
      await new Promise((r) => setTimeout(r, 300))
      s.write('\x03')
      s.write('echo after-interrupt\r')
      await s.waitFor(AFTER(/after-interrupt\r*\n/), mark, 10_000)
      expect(s.child.exitCode).toBeNull()

      s.write('exit 3\r')
      expect(await s.exited).toBe(3)
      expect(await sttyState(s.ttyPath)).toBe(initial)
    } finally {
      s.dispose()
    }
  })

  it('refuses -it when stdin is not a terminal (125)', async () => {
    const r = await env.ctr(['run', '-it', '--rm', env.image, 'true'], { input: '' })
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/the input device is not a TTY/)
  })

  it('-t without -i: a terminal for output only', async () => {
    const r = await env.ctr(['run', '-t', '--rm', env.image, 'sh', '-c', 'tty; [ -t 0 ] && echo stdin-is-tty'])
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('/dev/console\r\nstdin-is-tty\r\n')
  })
})

describe('ctr exec -it', () => {
  it('runs an interactive shell in a running container', async () => {
    await env.ok(['run', '-d', '--name', 'target', env.image, 'sh', '-c', 'echo marker > /marker; exec sleep 60'])
    const s = session(['exec', '-it', 'target', 'sh'])
    try {
      const initial = await sttyState(s.ttyPath)
      await s.waitFor(PROMPT)
      const mark = s.output().length
      s.write('cat /marker; [ -t 0 ] && [ -t 1 ] && echo on-a-tty; cat /proc/1/cmdline | tr "\\0" " "; echo\r')
      const out = await s.waitFor(AFTER(/sleep 60 \r*\n/), mark)
      expect(out).toMatch(/^marker\r*$/m)
      expect(out).toMatch(/^on-a-tty\r*$/m)
      s.write('exit 4\r')
      expect(await s.exited).toBe(4)
      expect(await sttyState(s.ttyPath)).toBe(initial)
    } finally {
      s.dispose()
    }
    await env.ok(['rm', '-f', 'target'])
    await eventually(async () => (await env.leftovers()).monitors.length === 0, 10_000, 'the monitor to exit')
  })
})

describe('ctr pull on a terminal', () => {
  it('draws a progress bar per layer, redrawn in place', async () => {
    registry = await startRegistry()
    await pushFixtures(registry, await sharedFixtures(), ['busybox'])
    const ref = `${registry.host}/library/busybox:latest`
    // A store of its own (a later --root wins), so that the layer is downloaded.
    const s = session(['--root', `${env.dir}/pull-root`, '--insecure-registry', registry.host, 'pull', ref])
    try {
      expect(await s.exited).toBe(0)
      const out = s.output()
      expect(out).toMatch(/\x1b\[2K[0-9a-f]{12}: Pull complete\r*\n/) // a bar line, finished
      expect(out).not.toMatch(/Pull complete \(/) // not the plain per-line format
      expect(out).toMatch(/^Digest: sha256:[0-9a-f]{64}\r*$/m)
      expect(out).toContain(ref)
    } finally {
      s.dispose()
    }
  })
})
