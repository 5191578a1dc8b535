/**
 * `ctr run` in the foreground, end to end as root: the built CLI in its own process, a
 * temporary store and state, the busybox fixture image. Output, exit statuses (the
 * container's, 125/126/127, 128+n), --rm, -e/--env-file, -v/--tmpfs, limits and security
 * flags, and flag errors that name the flag.
 */
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, makeCliEnv, readState, type CliEnv } from './helpers/cli-env.js'

let env: CliEnv

beforeAll(async () => {
  env = await makeCliEnv()
})

afterAll(async () => {
  if (!env) return
  const left = await env.dispose()
  expect(left, 'left behind by the run tests').toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
})

describe('ctr run (foreground)', () => {
  it('prints the container’s stdout and stderr and exits with its status', async () => {
    const r = await env.ctr(['run', '--rm', env.image, 'sh', '-c', 'echo out; echo err >&2; exit 3'])
    expect(r.stdout).toBe('out\n')
    expect(r.stderr).toBe('err\n')
    expect(r.code).toBe(3)
  })

  it('stops parsing flags at the image: the command keeps its own flags', async () => {
    const r = await env.ctr(['run', '--rm', env.image, 'ls', '-d', '/etc', '--', '-e'])
    // `ls -d /etc -- -e`: ls got -d (and the literal -e, which does not exist)
    expect(r.stdout).toBe('/etc\n')
    expect(r.stderr).toMatch(/-e/)
    expect(r.code).toBe(1)
  })

  it('keeps the container without --rm (ps -a, inspect, logs), and rm removes it', async () => {
    const r = await env.ctr(['run', '--name', 'kept', env.image, 'sh', '-c', 'echo kept-output; exit 5'])
    expect(r.code).toBe(5)
    const ps = await env.ok(['ps', '-a'])
    expect(ps).toMatch(/kept\s*$/m)
    expect(ps).toMatch(/Exited \(5\)/)
    expect(await env.ok(['ps'])).not.toMatch(/kept/) // not running
    const info = JSON.parse(await env.ok(['inspect', 'kept'])) as { Id: string; State: { Status: string; ExitCode: number; Running: boolean } }[]
    expect(info[0]!.State).toMatchObject({ Status: 'exited', ExitCode: 5, Running: false })
    expect(await env.ok(['logs', 'kept'])).toBe('kept-output\n')
    const id = info[0]!.Id
    expect(fs.existsSync(path.join(env.state, id))).toBe(true)
    expect(await env.ok(['rm', 'kept'])).toBe('kept\n')
    expect(fs.existsSync(path.join(env.state, id))).toBe(false)
    expect((await env.ctr(['inspect', 'kept'])).code).toBe(125)
  })

  it('--rm leaves no state behind', async () => {
    const before = fs.existsSync(env.state) ? fs.readdirSync(env.state).length : 0
    expect((await env.ctr(['run', '--rm', env.image, 'true'])).code).toBe(0)
    expect(fs.readdirSync(env.state).length).toBe(before)
    expect(await env.ok(['ps', '-a', '-q'])).toBe('')
  })

  it('-e and --env-file set the environment (KEY alone copies ours)', async () => {
    const file = path.join(env.dir, 'env.list')
    fs.writeFileSync(file, '# a comment\nFROM_FILE=file value\n\nOVERRIDDEN=from-file\n')
    const r = await env.ctr(['run', '--rm', '--env-file', file, '-e', 'A=1', '-e', 'OVERRIDDEN=from-flag', '-e', 'COPIED', env.image, 'sh', '-c', 'echo "$A|$FROM_FILE|$OVERRIDDEN|$COPIED"'], {
      env: { COPIED: 'from-host' },
    })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('1|file value|from-flag|from-host\n')
  })

  it('-v binds host directories (read-write and :ro) and named volumes that outlive the container', async () => {
    const host = path.join(env.dir, 'shared')
    fs.mkdirSync(host)
    fs.writeFileSync(path.join(host, 'in.txt'), 'from host\n')
    const r = await env.ctr([
      'run', '--rm', '-v', `${host}:/data`, '-v', `${host}:/ro:ro`, '-v', 'myvol:/vol', env.image,
      'sh', '-c', 'cat /data/in.txt; echo written > /data/out.txt; echo x > /ro/nope 2>/dev/null || echo ro-refused; echo kept > /vol/f',
    ])
    expect(r.stdout).toBe('from host\nro-refused\n')
    expect(r.code).toBe(0)
    expect(fs.readFileSync(path.join(host, 'out.txt'), 'utf8')).toBe('written\n')
    const again = await env.ctr(['run', '--rm', '-v', 'myvol:/again:ro', env.image, 'cat', '/again/f'])
    expect(again.stdout).toBe('kept\n')
    expect(fs.readFileSync(path.join(env.root, 'volumes', 'myvol', '_data', 'f'), 'utf8')).toBe('kept\n')
  })

  it('--tmpfs mounts a tmpfs of the given size; --read-only makes / read-only', async () => {
    const r = await env.ctr(['run', '--rm', '--read-only', '--tmpfs', '/scratch:size=1m', env.image, 'sh', '-c',
      'grep " /scratch " /proc/mounts; touch /nope 2>/dev/null || echo root-ro; echo ok > /scratch/f && cat /scratch/f'])
    expect(r.stdout).toMatch(/^tmpfs \/scratch tmpfs .*size=1024k/m)
    expect(r.stdout).toMatch(/^root-ro$/m)
    expect(r.stdout).toMatch(/^ok$/m)
  })

  it('-u, -w, --hostname, --entrypoint and --network host', async () => {
    const r = await env.ctr(['run', '--rm', '-u', '1234:5678', '-w', '/tmp', '--hostname', 'boxy', env.image, 'sh', '-c', 'id -u; id -g; pwd; hostname'])
    expect(r.stdout).toBe('1234\n5678\n/tmp\nboxy\n')
    const e = await env.ctr(['run', '--rm', '--entrypoint', 'echo', env.image, 'from', 'entrypoint'])
    expect(e.stdout).toBe('from entrypoint\n')
    const hostLinks = fs.readdirSync('/sys/class/net').sort()
    const none = await env.ctr(['run', '--rm', env.image, 'ls', '/sys/class/net'])
    expect(none.stdout.split('\n').filter(Boolean)).toEqual(['lo'])
    const host = await env.ctr(['run', '--rm', '--network', 'host', env.image, 'ls', '/sys/class/net'])
    expect(host.stdout.split('\n').filter(Boolean).sort()).toEqual(hostLinks)
  })

  it('--init runs ctr-init as PID 1 (the command is its child)', async () => {
    const r = await env.ctr(['run', '--rm', '--init', env.image, 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$'])
    expect(r.stdout).toMatch(/^\/dev\/init -- sh -c/)
    expect(r.stdout.trim().split('\n').pop()).not.toBe('1')
  })

  it('limits go to the container’s cgroup: -m, --cpus, --pids-limit (a fork bomb stops)', async () => {
    const r = await env.ctr(['run', '-d', '--name', 'limited', '-m', '32m', '--cpus', '0.5', '--pids-limit', '20', env.image, 'sleep', '60'])
    expect(r.code).toBe(0)
    const info = JSON.parse(await env.ok(['inspect', 'limited'])) as { Cgroup: { name: string; parent: string }; HostConfig: { Memory: number } }[]
    expect(info[0]!.HostConfig.Memory).toBe(32 * 2 ** 20)
    const { detect } = await import('@ctr/cgroups')
    const host = await detect()
    const mem = host.legacy.find((h) => h.controllers.includes('memory'))
    if (host.mode === 'unified') {
      const dir = path.join(host.unified!.mount, host.unified!.own, env.cgroupParent, info[0]!.Cgroup.name)
      expect(fs.readFileSync(path.join(dir, 'memory.max'), 'utf8').trim()).toBe(String(32 * 2 ** 20))
      expect(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8').trim()).toBe('20')
      expect(fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim()).toBe('50000 100000')
    } else {
      const dir = path.join(mem!.mount, mem!.own, env.cgroupParent, info[0]!.Cgroup.name)
      expect(fs.readFileSync(path.join(dir, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(32 * 2 ** 20))
      const pids = host.legacy.find((h) => h.controllers.includes('pids'))!
      expect(fs.readFileSync(path.join(pids.mount, pids.own, env.cgroupParent, info[0]!.Cgroup.name, 'pids.max'), 'utf8').trim()).toBe('20')
      const cpu = host.legacy.find((h) => h.controllers.includes('cpu'))!
      expect(fs.readFileSync(path.join(cpu.mount, cpu.own, env.cgroupParent, info[0]!.Cgroup.name, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000')
    }
    // A fork bomb inside hits the pids limit instead of the host.
    const bomb = await env.ctr(['exec', 'limited', 'sh', '-c', 'for i in $(seq 1 40); do sleep 30 >/dev/null 2>&1 & done 2>/dev/null; sleep 0.2; ls /proc | grep -c "^[0-9]"'])
    expect(Number(bomb.stdout.trim())).toBeLessThanOrEqual(20)
    expect(await env.ok(['rm', '-f', 'limited'])).toBe('limited\n')
  })

  const caps = async (...flags: string[]) => {
    const r = await env.ctr(['run', '--rm', ...flags, env.image, 'sh', '-c', 'grep -E "^(CapEff|Seccomp):" /proc/self/status'])
    expect(r.stderr).toBe('')
    const eff = BigInt(`0x${/CapEff:\s*([0-9a-f]+)/.exec(r.stdout)![1]}`)
    return { eff, seccomp: /Seccomp:\s*(\d)/.exec(r.stdout)![1] }
  }
  const CHOWN = 1n << 0n
  const NET_ADMIN = 1n << 12n
  // --privileged asks for every capability of the kernel; a host whose own bounding set lacks
  // some (this VM's root has no CAP_SYS_RESOURCE) cannot grant it (reported to the runtime).
  const ownBounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]}`)
  const lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'))
  const fullBounding = ownBounding === (1n << BigInt(lastCap + 1)) - 1n

  it('--cap-drop and --cap-add change the capability set; seccomp=unconfined drops the filter', async () => {
    const base = await caps()
    expect(base.eff & CHOWN).toBe(CHOWN)
    expect(base.eff & NET_ADMIN).toBe(0n)
    expect(base.seccomp).toBe('2')
    const changed = await caps('--cap-drop', 'chown', '--cap-add', 'NET_ADMIN')
    expect(changed.eff & CHOWN).toBe(0n)
    expect(changed.eff & NET_ADMIN).toBe(NET_ADMIN)
    const unconfined = await caps('--security-opt', 'seccomp=unconfined')
    expect(unconfined.seccomp).toBe('0')
    expect(unconfined.eff).toBe(base.eff)
  })

  it.skipIf(!fullBounding)('--privileged gives every capability and no seccomp filter', async () => {
    const priv = await caps('--privileged')
    expect(priv.seccomp).toBe('0')
    expect(priv.eff).toBe(ownBounding)
  })

  it('--security-opt seccomp=<file> loads a Docker-format profile', async () => {
    const file = path.join(env.dir, 'deny-mkdir.json')
    fs.writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }))
    const r = await env.ctr(['run', '--rm', '--security-opt', `seccomp=${file}`, env.image, 'sh', '-c', 'mkdir /tmp/x || echo refused; touch /tmp/y && echo touched'])
    expect(r.stdout).toBe('refused\ntouched\n')
  })

  it('exits 127 when the command is not found and 126 when it cannot be executed, and cleans up', async () => {
    const notFound = await env.ctr(['run', '--rm', env.image, 'no-such-program'])
    expect(notFound.code).toBe(127)
    expect(notFound.stderr).toMatch(/^ctr: .*no-such-program.*ENOENT/m)
    const cannot = await env.ctr(['run', env.image, '/etc'])
    expect(cannot.code).toBe(126)
    expect(cannot.stderr).toMatch(/^ctr: .*\/etc/m)
    expect(await env.ok(['ps', '-a', '-q'])).toBe('')
  })

  it('exits 128+n when the container is killed by signal n (ctr kill from another process)', async () => {
    const run = env.ctr(['run', '--name', 'victim', env.image, 'sleep', '60'])
    await eventually(async () => (await env.ok(['ps'])).includes('victim'), 15_000, 'victim running')
    expect(await env.ok(['kill', 'victim'])).toBe('victim\n')
    const r = await run
    expect(r.code).toBe(137)
    expect(await env.ok(['ps', '-a'])).toMatch(/Exited \(137\)/)
    await env.ok(['rm', 'victim'])
  })

  it('forwards SIGTERM to the container (with --init PID 1 passes it on)', async () => {
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, env.argv(['run', '--rm', '--init', '--name', 'termed', env.image, 'sleep', '60']), { stdio: 'ignore', env: process.env })
    const code = new Promise<number | null>((r) => child.on('close', (c) => r(c)))
    await eventually(async () => (await env.ok(['ps'])).includes('termed'), 15_000, 'termed running')
    child.kill('SIGTERM')
    expect(await code).toBe(128 + 15)
  })

  it('a name in use is an error (125) that names it', async () => {
    const first = await env.ctr(['run', '-d', '--name', 'dup', env.image, 'sleep', '60'])
    expect(first.code).toBe(0)
    const second = await env.ctr(['run', '--name', 'dup', env.image, 'true'])
    expect(second.code).toBe(125)
    expect(second.stderr).toMatch(/ctr: .*"dup" is already in use/)
    await env.ok(['rm', '-f', 'dup'])
  })

  it('-i keeps stdin open while the container runs, and the container is listed meanwhile', async () => {
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, env.argv(['run', '-i', '--rm', '--name', 'inter', env.image, 'sh', '-c', 'cat; echo end']), { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const code = new Promise<number | null>((r) => child.on('close', (c) => r(c)))
    child.stdin.write('first\n')
    await eventually(() => out === 'first\n', 15_000, () => `first line echoed, got ${JSON.stringify(out)}`)
    expect(await env.ok(['ps', '--format', '{{.Names}} {{.State}}'])).toBe('inter running\n')
    child.stdin.end('second\n')
    expect(await code).toBe(0)
    expect(out).toBe('first\nsecond\nend\n')
  })

  it('reads stdin with -i and not without it', async () => {
    const withI = await env.ctr(['run', '--rm', '-i', env.image, 'sh', '-c', 'cat; echo end'], { input: 'piped in\n' })
    expect(withI.stdout).toBe('piped in\nend\n')
    const withoutI = await env.ctr(['run', '--rm', env.image, 'sh', '-c', 'cat; echo end'], { input: 'piped in\n' })
    expect(withoutI.stdout).toBe('end\n')
  })
})

describe('flag errors (exit 125, the message names the flag)', () => {
  const cases: [string[], RegExp][] = [
    [['run', '--no-such-flag', 'IMG'], /unknown flag: --no-such-flag/],
    [['run', '-Q', 'IMG'], /unknown shorthand flag: -Q/],
    [['run', '--memory', 'lots', 'IMG'], /invalid argument "lots" for "-m, --memory" flag/],
    [['run', '--cpus', 'x', 'IMG'], /invalid argument "x" for "--cpus" flag/],
    [['run', '--pids-limit', '1.5', 'IMG'], /invalid argument "1.5" for "--pids-limit" flag/],
    [['run', '--network', 'bad/name', 'IMG'], /invalid argument "bad\/name" for "--network" flag/],
    [['run', '--pull', 'sometimes', 'IMG'], /invalid argument "sometimes" for "--pull" flag/],
    [['run', '-v', 'relative:path:zz', 'IMG'], /for "-v, --volume" flag/],
    [['run', '--tmpfs', 'relative', 'IMG'], /for "--tmpfs" flag/],
    [['run', '--ulimit', 'nofiles=1', 'IMG'], /for "--ulimit" flag: unknown limit "nofiles"/],
    [['run', '--cap-add', 'NET_ADMN', 'IMG'], /--cap-add: .*unknown capability "NET_ADMN"/],
    [['run', '--name', 'bad name', 'IMG'], /--name: /],
    [['run', '--user', 'a:b:c', 'IMG'], /-u, --user: /],
    [['run', '--security-opt', 'apparmor=x', 'IMG'], /for "--security-opt" flag/],
    [['run', '--rm'], /"ctr run" requires at least 1 argument/],
    [['run', '--name'], /flag needs an argument: --name/],
    [['stop', '-t', 'soon', 'x'], /invalid argument "soon" for "-t, --time" flag/],
    [['kill', '-s', 'SIGNOPE', 'x'], /invalid argument "SIGNOPE" for "-s, --signal" flag/],
    [['logs', '--tail', 'some', 'x'], /for "-n, --tail" flag/],
    [['images', '--bogus'], /unknown flag: --bogus/],
    [['frobnicate'], /'frobnicate' is not a ctr command/],
  ]
  it.each(cases)('ctr %j', async (args, message) => {
    const r = await env.ctr(args.map((a) => (a === 'IMG' ? env.image : a)))
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/^ctr: /)
    expect(r.stderr).toMatch(message)
    expect(r.stdout).toBe('')
  })

  it('nothing was created by the rejected commands', async () => {
    expect(await env.ok(['ps', '-a', '-q'])).toBe('')
    expect((await env.leftovers()).cgroups).toEqual([])
  })

  it('--debug prints the error code and stack', async () => {
    const r = await env.ctr(['run', '--rm', env.image, 'no-such-program'], { globals: ['--debug'] })
    expect(r.code).toBe(127)
    expect(r.stderr).toMatch(/^code: ERR_RUNTIME_START/m)
    expect(r.stderr).toMatch(/\n\s+at /)
    expect(r.stderr).toMatch(/caused by: \[ENOENT\]/)
  })

  it('--help prints usage for every command, exit 0', async () => {
    const r = await env.ctr(['run', '--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage:\s+ctr run \[OPTIONS\] IMAGE/)
    expect(r.stdout).toMatch(/-m, --memory bytes/)
    const top = await env.ctr(['--help'])
    expect(top.stdout).toMatch(/Containers:[\s\S]*run[\s\S]*Images:[\s\S]*pull/)
    const v = await env.ctr(['version'])
    expect(v.stdout).toMatch(/^ctr version \d/)
  })

  it('the state of a foreground container names ctr as its owner while it runs', async () => {
    const { spawn } = await import('node:child_process')
    const child = spawn(process.execPath, env.argv(['run', '--rm', '--name', 'owned', env.image, 'sleep', '30']), { stdio: 'ignore' })
    const closed = new Promise((r) => child.on('close', r))
    const id = (await eventually(async () => (await env.ok(['ps', '-q', '--no-trunc'])).trim(), 15_000, 'owned running')).split('\n')[0]!
    const s = readState(env, id) as { owner: { pid: number } }
    expect(s.owner.pid).toBe(child.pid)
    await env.ok(['rm', '-f', 'owned'])
    await closed
  })
})
