/**
 * Detached containers (`ctr run -d`) and the commands that act on them from other `ctr`
 * processes: ps, logs (-f), exec, stats, inspect, stop, kill, rm, commit. The monitor must
 * outlive the `ctr` that started it, own the container in state.json, record the exit and
 * remove the container with --rm; and the commands must work from another cgroup too.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Cgroup } from '@ctr/cgroups'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { alive, eventually, makeCliEnv, readState, runNode, type CliEnv } from './helpers/cli-env.js'

let env: CliEnv

beforeAll(async () => {
  env = await makeCliEnv()
})

afterAll(async () => {
  if (!env) return
  const left = await env.dispose()
  expect(left, 'left behind by the detached tests').toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
})

interface State {
  id: string
  status: string
  owner: { pid: number }
  process?: { pid: number }
  exitCode?: number | null
  signal?: string | null
}

async function startDetached(name: string, cmd: string[], flags: string[] = []): Promise<{ id: string; state: State }> {
  const out = await env.ok(['run', '-d', '--name', name, ...flags, env.image, ...cmd])
  const id = out.trim()
  expect(id).toMatch(/^[0-9a-f]{64}$/)
  const state = readState(env, id) as unknown as State
  return { id, state }
}

function procStat(pid: number): { ppid: number; sid: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { ppid: Number(f[1]), sid: Number(f[3]) }
}

describe('ctr run -d and its monitor', () => {
  it('prints the id and returns while the container runs, owned by a detached monitor', async () => {
    const t0 = Date.now()
    const { id, state } = await startDetached('web', ['sh', '-c', 'echo started; echo to-stderr >&2; while true; do sleep 1; done'])
    expect(Date.now() - t0).toBeLessThan(30_000)
    expect(state.status).toBe('running')
    const monitor = state.owner.pid
    expect(alive(monitor)).toBe(true)
    expect(fs.readFileSync(`/proc/${monitor}/cmdline`, 'utf8')).toMatch(/monitor\/main\.js/)
    // Its own session (setsid), and no longer a child of anything of ours: the ctr that
    // started it has exited.
    const st = procStat(monitor)
    expect(st.sid).toBe(monitor)
    expect(st.ppid).not.toBe(process.pid)
    expect(alive(state.process!.pid)).toBe(true)
    expect(procStat(state.process!.pid).ppid).toBe(monitor)
    const ps = await env.ok(['ps'])
    expect(ps).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+.*Up .*\\s+web$`, 'm'))
    expect((await env.ok(['ps', '-q'])).split('\n')).toContain(id.slice(0, 12))
  })

  it('logs shows what the container wrote, on the right streams', async () => {
    const r = await env.ctr(['logs', 'web'])
    expect(r.stdout).toBe('started\n')
    expect(r.stderr).toBe('to-stderr\n')
    const t = await env.ok(['logs', '-t', 'web'])
    expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z started$/m)
  })

  it('exec runs in the same namespaces, cgroup, user, capabilities and seccomp filter', async () => {
    const r = await env.ctr(['exec', 'web', 'sh', '-c', [
      'echo pid=$$',
      'cat /proc/1/cmdline | tr "\\0" " "; echo',
      '[ "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" ] && echo same-cgroup',
      '[ "$(grep -E "^(Cap|Seccomp:|NoNewPrivs)" /proc/self/status)" = "$(grep -E "^(Cap|Seccomp:|NoNewPrivs)" /proc/1/status)" ] && echo same-security',
      'readlink /proc/self/ns/mnt; readlink /proc/1/ns/mnt',
    ].join('; ')])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(Number(lines[0]!.slice(4))).toBeGreaterThan(1) // a pid of the container's namespace
    expect(Number(lines[0]!.slice(4))).toBeLessThan(1000)
    expect(lines[1]).toMatch(/^sh -c echo started/)
    expect(lines).toContain('same-cgroup')
    expect(lines).toContain('same-security')
    expect(lines[lines.length - 1]).toBe(lines[lines.length - 2])
    expect(lines[lines.length - 1]).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'))
  })

  it('exec -e, -u, -w, -i; its exit status is the command’s, 127 when not found', async () => {
    const r = await env.ctr(['exec', '-e', 'GREETING=hi', '-u', '1000:1000', '-w', '/tmp', 'web', 'sh', '-c', 'echo $GREETING $(id -u):$(id -g) $(pwd); exit 42'])
    expect(r.stdout).toBe('hi 1000:1000 /tmp\n')
    expect(r.code).toBe(42)
    const named = await env.ctr(['exec', '-u', 'nobody', 'web', 'id'])
    expect(named.stdout).toMatch(/^uid=65534\(nobody\) gid=65534\(nogroup\)/)
    const i = await env.ctr(['exec', '-i', 'web', 'cat'], { input: 'through stdin\n' })
    expect(i.stdout).toBe('through stdin\n')
    const nf = await env.ctr(['exec', 'web', 'no-such-command'])
    expect(nf.code).toBe(127)
    expect(nf.stderr).toMatch(/^ctr: /)
    const missing = await env.ctr(['exec', 'nonexistent', 'true'])
    expect(missing.code).toBe(125)
    expect(missing.stderr).toMatch(/no such container: nonexistent/)
  })

  it('stats reads the container’s cgroup', async () => {
    const r = await env.ok(['stats', '--no-stream'])
    expect(r).toMatch(/^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+BLOCK I\/O\s+PIDS$/m)
    expect(r).toMatch(/\sweb\s+\d+\.\d\d%\s+\S+ \/ \S+\s+\d+\.\d\d%/)
    const json = (await env.ok(['stats', '--no-stream', '--format', 'json', 'web'])).trim().split('\n').map((l) => JSON.parse(l) as { Name: string; PIDs: number; memoryBytes: number })
    expect(json).toHaveLength(1)
    expect(json[0]!.Name).toBe('web')
    expect(json[0]!.PIDs).toBeGreaterThanOrEqual(1)
    expect(json[0]!.memoryBytes).toBeGreaterThan(0)
  })

  it('inspect shows the running state, the monitor as owner, and the host config', async () => {
    const [c] = JSON.parse(await env.ok(['inspect', 'web'])) as { Id: string; Name: string; State: { Status: string; Running: boolean; Pid: number }; Owner: { Pid: number; Alive: boolean; Monitor: boolean }; HostConfig: { AutoRemove: boolean; NetworkMode: string } }[]
    expect(c!.Name).toBe('web')
    expect(c!.State).toMatchObject({ Status: 'running', Running: true })
    expect(alive(c!.State.Pid)).toBe(true)
    expect(c!.Owner).toMatchObject({ Alive: true, Monitor: true })
    expect(c!.HostConfig).toMatchObject({ AutoRemove: false, NetworkMode: 'none' })
    expect(await env.ok(['inspect', '-f', '{{.State.Status}} {{.Name}}', c!.Id.slice(0, 10)])).toBe('running web\n')
  })

  it('rm without -f refuses a running container; stop stops it (SIGKILL after -t) and the monitor records it', async () => {
    const refused = await env.ctr(['rm', 'web'])
    expect(refused.code).toBe(125)
    expect(refused.stderr).toMatch(/is running.*rm -f/)
    const before = readState(env, (await env.ok(['ps', '-q', '--no-trunc'])).trim().split('\n')[0]!) as unknown as State
    const t0 = Date.now()
    expect(await env.ok(['stop', '-t', '1', 'web'])).toBe('web\n')
    expect(Date.now() - t0).toBeGreaterThan(900) // sh as PID 1 ignores SIGTERM: killed after 1 s
    const after = readState(env, before.id) as unknown as State
    expect(after.status).toBe('exited')
    expect(after.signal).toBe('SIGKILL')
    await eventually(() => !alive(before.owner.pid), 10_000, 'the monitor to exit')
    expect(await env.ok(['ps', '-a'])).toMatch(/Exited \(137\) .*web$/m)
    expect(await env.ok(['ps'])).not.toMatch(/web/)
    expect(await env.ok(['rm', 'web'])).toBe('web\n')
    expect(fs.existsSync(path.join(env.state, before.id))).toBe(false)
  })

  it('the monitor outlives ctr and records the exit code', async () => {
    const { id, state } = await startDetached('short', ['sh', '-c', 'sleep 1; echo done; exit 42'])
    expect(state.status).toBe('running')
    const s = await eventually(() => {
      const x = readState(env, id) as unknown as State | undefined
      return x?.status === 'exited' ? x : undefined
    }, 20_000, 'the exit to be recorded')
    expect(s.exitCode).toBe(42)
    await eventually(() => !alive(state.owner.pid), 10_000, 'the monitor to exit')
    expect(await env.ok(['inspect', '-f', '{{.State.ExitCode}}', 'short'])).toBe('42\n')
    expect(await env.ok(['logs', 'short'])).toBe('done\n')
    expect(await env.ok(['ps', '-a'])).toMatch(/Exited \(42\) .*short$/m)
    await env.ok(['rm', 'short'])
  })

  it('logs -f follows until the container exits', async () => {
    const { state } = await startDetached('chatty', ['sh', '-c', 'echo one; sleep 1; echo two; sleep 1; echo three'])
    const r = await env.ctr(['logs', '-f', 'chatty'], { timeoutMs: 30_000 })
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('one\ntwo\nthree\n')
    expect((readState(env, state.id) as unknown as State).status).toBe('exited')
    await env.ok(['rm', 'chatty'])
  })

  it('--rm -d: the monitor removes the container once it exits', async () => {
    const { id, state } = await startDetached('gone', ['sh', '-c', 'sleep 0.5'], ['--rm'])
    await eventually(() => !fs.existsSync(path.join(env.state, id)), 20_000, 'the container to be removed')
    await eventually(() => !alive(state.owner.pid), 10_000, 'the monitor to exit')
    expect((await env.leftovers()).cgroups).toEqual([])
  })

  it('kill -s sends a signal to init (with --init, the command gets it); rm -f kills and removes', async () => {
    const { id, state } = await startDetached('sig', ['sleep', '60'], ['--init'])
    expect(await env.ok(['kill', '-s', 'TERM', 'sig'])).toBe('sig\n')
    const s = await eventually(() => {
      const x = readState(env, id) as unknown as State | undefined
      return x?.status === 'exited' ? x : undefined
    }, 15_000, 'exit after SIGTERM')
    expect(s.exitCode === 143 || s.signal === 'SIGTERM').toBe(true)
    await env.ok(['rm', 'sig'])
    const { id: id2, state: st2 } = await startDetached('forced', ['sleep', '60'])
    expect(await env.ok(['rm', '-f', 'forced'])).toBe('forced\n')
    expect(fs.existsSync(path.join(env.state, id2))).toBe(false)
    expect(alive(st2.process!.pid)).toBe(false)
    await eventually(() => !alive(st2.owner.pid) && !alive(state.owner.pid), 10_000, 'monitors to exit')
    const kNone = await env.ctr(['kill', 'forced'])
    expect(kNone.code).toBe(125)
  })

  it('SIGTERM to the monitor stops the container and the exit is still recorded', async () => {
    const { id, state } = await startDetached('orphaned', ['sleep', '60'], ['--init'])
    process.kill(state.owner.pid, 'SIGTERM')
    const s = await eventually(() => {
      const x = readState(env, id) as unknown as State | undefined
      return x?.status === 'exited' ? x : undefined
    }, 20_000, 'the exit after the monitor got SIGTERM')
    expect(s.exitCode === 143 || s.signal === 'SIGTERM').toBe(true)
    await eventually(() => !alive(state.owner.pid), 10_000, 'the monitor to exit')
    await env.ok(['rm', 'orphaned'])
  })

  it('a failing start in the monitor is reported by ctr (127) and leaves nothing', async () => {
    const r = await env.ctr(['run', '-d', '--name', 'broken', env.image, 'no-such-binary'])
    expect(r.code).toBe(127)
    expect(r.stderr).toMatch(/^ctr: .*no-such-binary/m)
    expect(r.stdout).toBe('')
    await eventually(async () => (await env.leftovers()).monitors.length === 0, 10_000, 'the monitor to exit')
    expect(await env.ok(['ps', '-a', '-q'])).toBe('')
  })
})

describe('ctr commit', () => {
  it('commits a container’s changes with -m, -a and --change, and the image runs', async () => {
    await startDetached('builder', ['sh', '-c', 'echo "made inside" > /hello; while true; do sleep 1; done'])
    await eventually(async () => (await env.ctr(['exec', 'builder', 'cat', '/hello'])).stdout === 'made inside\n', 10_000, '/hello')
    const id = (await env.ok(['commit', '-m', 'add hello', '-a', 'Tester <t@example.com>', '-c', 'CMD ["cat", "/hello"]', '-c', 'ENV FROM_COMMIT=yes', '-c', 'LABEL stage=test', 'builder', 'mine/committed:v1'])).trim()
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/)
    // the container was only frozen during the commit
    expect((await env.ctr(['exec', 'builder', 'true'])).code).toBe(0)
    const images = await env.ok(['images'])
    expect(images).toMatch(new RegExp(`^mine/committed\\s+v1\\s+${id.slice(7, 19)}\\s`, 'm'))
    const [img] = JSON.parse(await env.ok(['inspect', 'mine/committed:v1'])) as { Id: string; Author: string; Config: { Cmd: string[]; Env: string[]; Labels: Record<string, string> }; History: { comment?: string }[] }[]
    expect(img!.Id).toBe(id)
    expect(img!.Author).toBe('Tester <t@example.com>')
    expect(img!.Config.Cmd).toEqual(['cat', '/hello'])
    expect(img!.Config.Env).toContain('FROM_COMMIT=yes')
    expect(img!.Config.Labels).toMatchObject({ stage: 'test' })
    expect(img!.History.at(-1)?.comment).toBe('add hello')
    const r = await env.ctr(['run', '--rm', 'mine/committed:v1'])
    expect(r.stdout).toBe('made inside\n')
    expect(r.code).toBe(0)
    await env.ok(['rm', '-f', 'builder'])
    expect((await env.ctr(['commit', '-c', 'RUN make', 'x'])).stderr).toMatch(/RUN is not supported/)
  })
})

describe('from another cgroup', () => {
  it('ps, exec, stats and rm -f work from a ctr in a different cgroup than the container’s creator', async () => {
    const { id, state } = await startDetached('elsewhere', ['sleep', '60'])
    // A cgroup of our own, beside the containers' parent: a `ctr` placed in it sees other
    // "own" cgroups than the monitor did.
    const other = await Cgroup.create(`x-${process.pid}`, {}, { parent: `${env.cgroupParent}-other` })
    try {
      const place = other.placement
      const files = [...(place.unified ? [place.unified] : []), ...(place.legacy ?? [])].map((d) => path.join(d, 'cgroup.procs'))
      const sh = (args: string[]) =>
        runNode(['-e', `
          const fs = require('fs'); const { spawnSync } = require('child_process')
          for (const f of ${JSON.stringify(files)}) fs.writeFileSync(f, String(process.pid))
          const r = spawnSync(process.execPath, ${JSON.stringify(env.argv(args))}, { encoding: 'utf8', env: { ...process.env } })
          process.stdout.write(r.stdout); process.stderr.write(r.stderr); process.exit(r.status ?? 125)
        `])
      const cg = await sh(['exec', 'elsewhere', 'cat', '/proc/self/cgroup'])
      expect(cg.stderr).toBe('')
      expect(cg.stdout).toMatch(new RegExp(`/${env.cgroupParent}/${id}$`, 'm'))
      const stats = await sh(['stats', '--no-stream', '--format', 'json', 'elsewhere'])
      expect(stats.stderr).toBe('')
      expect((JSON.parse(stats.stdout.trim()) as { PIDs: number }).PIDs).toBe(1)
      const rm = await sh(['rm', '-f', 'elsewhere'])
      expect(rm.stderr).toBe('')
      expect(rm.code).toBe(0)
      expect(fs.existsSync(path.join(env.state, id))).toBe(false)
      await eventually(() => !alive(state.owner.pid), 10_000, 'the monitor to exit')
      expect((await env.leftovers()).cgroups).toEqual([])
    } finally {
      await other.destroy()
    }
  })
})

describe('crash cleanup', () => {
  it('a container whose monitor was SIGKILLed is cleaned up by the next ctr', async () => {
    const { id, state } = await startDetached('crashed', ['sleep', '60'])
    process.kill(state.owner.pid, 'SIGKILL')
    // The container's init dies with its parent (PR_SET_PDEATHSIG); the state stays behind.
    await eventually(() => !alive(state.process!.pid), 10_000, 'init to die with the monitor')
    expect(fs.existsSync(path.join(env.state, id))).toBe(true)
    await env.ok(['ps', '-a'])
    expect(fs.existsSync(path.join(env.state, id))).toBe(false)
    expect((await env.leftovers()).cgroups).toEqual([])
  })
})
