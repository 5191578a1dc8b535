/**
 * Containers with a lifecycle: create → start → exec / pause / resume / stats / top / logs /
 * events → kill / stop → delete; state on disk for other processes; a parent killed mid-run
 * leaves nothing that the next Runtime.open does not clean.
 */
import { spawn as spawnProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Runtime, type Container, type ContainerEvent } from '../src/index.js'
import { makeRuntimeEnv, type RuntimeEnv } from './helpers/runtime-env.js'

let env: RuntimeEnv
const started: Container[] = []

async function startLong(extra: Record<string, unknown> = {}): Promise<Container> {
  const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'echo ready > /tmp/ready; while :; do sleep 0.05; done'], ...extra })
  started.push(c)
  await c.start()
  return c
}

beforeAll(async () => {
  env = await makeRuntimeEnv()
})

afterAll(async () => {
  for (const c of started) await c.delete({ force: true }).catch(() => {})
  await env?.dispose()
})

describe('lifecycle', () => {
  it('create writes state; start runs; wait returns the exit; delete removes everything', async () => {
    const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 5'], name: 'life1' })
    const stateFile = path.join(env.dir, 'run', c.id, 'state.json')
    expect(JSON.parse(fs.readFileSync(stateFile, 'utf8'))).toMatchObject({ id: c.id, name: 'life1', status: 'created' })
    await c.start()
    expect(await c.wait()).toEqual({ exitCode: 5, signal: null, oomKilled: false })
    expect(JSON.parse(fs.readFileSync(stateFile, 'utf8'))).toMatchObject({ status: 'exited', exitCode: 5 })
    const logs = await c.logs()
    expect(logs.filter((e) => e.stream === 'stdout').map((e) => e.text).join('')).toBe('out\n')
    expect(logs.filter((e) => e.stream === 'stderr').map((e) => e.text).join('')).toBe('err\n')
    await expect(c.start()).rejects.toMatchObject({ code: 'ERR_RUNTIME_STATE' })
    await c.delete()
    expect(fs.existsSync(path.dirname(stateFile))).toBe(false)
    expect(await env.cgroupDirs()).toEqual([])
    await c.delete() // idempotent
  })

  it('a name can be used once; the runtime resolves names and id prefixes', async () => {
    const c = await env.runtime.create({ image: env.image, cmd: ['true'], name: 'unique-name' })
    await expect(env.runtime.create({ image: env.image, cmd: ['true'], name: 'unique-name' })).rejects.toMatchObject({ code: 'ERR_RUNTIME_CONFLICT', field: 'name' })
    expect((await env.runtime.get('unique-name')).id).toBe(c.id)
    expect((await env.runtime.get(c.id.slice(0, 8))).id).toBe(c.id)
    await c.delete()
    await expect(env.runtime.get('unique-name')).rejects.toMatchObject({ code: 'ERR_RUNTIME_NOT_FOUND' })
  })

  it('delete of a running container needs force', async () => {
    const c = await startLong()
    await expect(c.delete()).rejects.toMatchObject({ code: 'ERR_RUNTIME_STATE' })
    await c.delete({ force: true })
    expect((await c.wait()).signal).toBe('SIGKILL')
  })
})

describe('a running container', () => {
  it('exec sees the same pid namespace, files, hostname and cgroup', async () => {
    const c = await startLong({ hostname: 'exec-box' })
    await waitForFile(c, '/tmp/ready')
    const r = await c.exec(['sh', '-c', 'cat /tmp/ready; hostname; cat /proc/1/cmdline | tr "\\0" " "; echo; cat /proc/self/cgroup | grep -c .'])
    expect(r.exitCode).toBe(0)
    const [ready, host, pid1] = r.stdout.split('\n')
    expect(ready).toBe('ready')
    expect(host).toBe('exec-box')
    expect(pid1).toMatch(/^sh -c echo ready/)
    // The exec'd process is in the container's cgroup.
    const inCgroup = await c.cgroup.processes()
    expect(inCgroup.length).toBeGreaterThanOrEqual(1)
    const u = await c.exec(['id', '-u'], { user: 'nobody' })
    expect(u.stdout).toBe('65534\n')
    const e = await c.exec(['sh', '-c', 'echo $X; pwd'], { env: { X: 'y' }, workdir: '/etc' })
    expect(e.stdout).toBe('y\n/etc\n')
    const fromStdin = await c.exec(['cat'], { stdin: 'piped' })
    expect(fromStdin.stdout).toBe('piped')
    await c.delete({ force: true })
  })

  it('pause stops progress and resume continues it', async () => {
    const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'while :; do echo x >> /tmp/log; done'] })
    started.push(c)
    await c.start()
    await waitForFile(c, '/tmp/log')
    // Progress as the host sees it: the size of the log in the snapshot's upper directory.
    const size = () => fs.statSync(path.join(env.dir, 'store', 'snapshots', c.id, 'upper', 'tmp', 'log')).size
    await c.pause()
    expect(c.state.status).toBe('paused')
    const a = size()
    await new Promise((r) => setTimeout(r, 300))
    expect(size()).toBe(a)
    await expect(c.exec(['true'])).rejects.toMatchObject({ code: 'ERR_RUNTIME_STATE' })
    await c.resume()
    const deadline = Date.now() + 10_000
    while (size() <= a && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(size()).toBeGreaterThan(a)
    await c.delete({ force: true })
  })

  it('stats and top report the container only', async () => {
    const c = await startLong({ memory: '64m', pids: 32 })
    await waitForFile(c, '/tmp/ready')
    const s = await c.stats()
    expect(s.memory.limit).toBe(64 * 1024 * 1024)
    expect(s.pids.current).toBeGreaterThanOrEqual(1)
    const top = await c.top()
    expect(top.some((p) => p.pid === c.pid && p.command.startsWith('sh -c'))).toBe(true)
    await c.delete({ force: true })
  })

  it('events: start, pause, resume, exit, delete, in order', async () => {
    const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'sleep 0.3; exit 2'] })
    const seen: ContainerEvent[] = []
    const done = (async () => {
      for await (const e of c.events()) seen.push(e)
    })()
    await c.start()
    await c.pause()
    await c.resume()
    await c.wait()
    await c.delete()
    await done
    expect(seen.map((e) => e.type)).toEqual(['start', 'pause', 'resume', 'exit', 'delete'])
    expect(seen[3]).toMatchObject({ exitCode: 2 })
  })

  it('an oom event is reported by events and wait', async () => {
    const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'head -c 300m /dev/zero | tail'], memory: '24m' })
    const types: string[] = []
    const done = (async () => { for await (const e of c.events()) types.push(e.type) })()
    await c.start()
    expect((await c.wait()).oomKilled).toBe(true)
    await c.delete()
    await done
    expect(types).toContain('oom')
  })

  it('stop sends SIGTERM and then SIGKILL after the timeout (an init that ignores TERM)', async () => {
    const c = await startLong()
    const exit = await c.stop({ timeoutMs: 300 })
    expect(exit.signal).toBe('SIGKILL')
    await c.delete()
  })
})

describe('crashes', () => {
  it('a parent killed mid-run leaves nothing the next Runtime.open does not clean', async () => {
    const here = path.dirname(fileURLToPath(import.meta.url))
    const script = path.join(here, 'helpers', 'crash-parent.mjs')
    const child = spawnProcess(process.execPath, [script, env.dir + '/store', env.dir + '/run', env.cgroupParent, env.image], { stdio: ['ignore', 'pipe', 'inherit'] })
    const id = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString()
        const m = /^started (\w+)$/m.exec(out)
        if (m) resolve(m[1]!)
      })
      child.on('exit', (code) => reject(new Error(`crash-parent exited early (${code}): ${out}`)))
    })
    const state = JSON.parse(fs.readFileSync(path.join(env.dir, 'run', id, 'state.json'), 'utf8'))
    expect(state.status).toBe('running')
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    // The container died with its parent (PDEATHSIG), and its root (mounted only in its own
    // mount namespace) with it; its snapshot directory, cgroup and state remain.
    expect(fs.existsSync(path.join(env.dir, 'store', 'snapshots', id))).toBe(true)
    expect((await env.cgroupDirs()).some((d) => d.endsWith(id))).toBe(true)
    const rt = await Runtime.open({ root: env.dir + '/store', stateRoot: env.dir + '/run', cgroupParent: env.cgroupParent, fsync: false })
    expect((await rt.list()).map((s) => s.id)).not.toContain(id)
    expect(env.mounts()).toEqual([])
    expect(await env.cgroupDirs()).toEqual([])
    expect(fs.existsSync(path.join(env.dir, 'store', 'snapshots', id))).toBe(false)
    // Gone, or a zombie waiting for the host's init to reap it (it was reparented there).
    const stat = (() => { try { return fs.readFileSync(`/proc/${state.process.pid}/stat`, 'utf8') } catch { return '' } })()
    expect(stat === '' || / Z /.test(stat.slice(stat.lastIndexOf(')')))).toBe(true)
  })
})

describe('removal in the background', () => {
  it('a process that exits right after run() cuts its background removal short; the next open finishes it', async () => {
    const here = path.dirname(fileURLToPath(import.meta.url))
    const script = path.join(here, 'helpers', 'crash-parent.mjs')
    const child = spawnProcess(process.execPath, [script, env.dir + '/store', env.dir + '/run', env.cgroupParent, env.image, 'run-then-exit'], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    expect(await new Promise((r) => child.once('exit', r))).toBe(0)
    const id = /^ran (\w+)$/m.exec(out)?.[1]
    expect(id, out).toBeDefined()
    // Left behind for certain: the state, marked autoRemove (it goes last). The cgroup and the
    // snapshot may be anywhere on their way out: whole, renamed aside, or gone.
    const state = JSON.parse(fs.readFileSync(path.join(env.dir, 'run', id!, 'state.json'), 'utf8'))
    expect(state.config.autoRemove).toBe(true)
    const rt = await Runtime.open({ root: env.dir + '/store', stateRoot: env.dir + '/run', cgroupParent: env.cgroupParent, fsync: false })
    expect((await rt.list()).map((s) => s.id)).not.toContain(id)
    expect(await env.cgroupDirs()).toEqual([])
    // Neither the snapshot nor a temporary of its removal is left.
    expect(fs.readdirSync(path.join(env.dir, 'store', 'snapshots'))).toEqual([])
    await rt.close()
  })
})

async function waitForFile(c: Container, file: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await c.exec(['test', '-e', file])
    if (r.exitCode === 0) return
    await new Promise((res) => setTimeout(res, 50))
  }
  throw new Error(`${file} never appeared in ${c.name}`)
}
