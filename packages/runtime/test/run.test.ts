/**
 * run() end to end, as root, on the busybox image: output and exit codes, the image config,
 * limits that hold (memory, pids, cpu), timeouts and aborts that kill the whole container,
 * secure defaults, mounts, networks, a TTY, init — and that nothing is left behind.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { run, RuntimeError, type RunOptions } from '../src/index.js'
import { makeRuntimeEnv, type RuntimeEnv } from './helpers/runtime-env.js'

let env: RuntimeEnv
const go = (o: Omit<RunOptions, 'image' | 'runtime'> & { image?: string }) => run({ image: env.image, runtime: env.runtime, ...o })

beforeAll(async () => {
  env = await makeRuntimeEnv()
})

// run() removes its container in the background: a test's checks for "nothing created"
// must not see the previous test's container on its way out.
afterEach(async () => {
  await env?.runtime.idle()
})

afterAll(async () => {
  await env?.dispose()
})

describe('output and exit codes', () => {
  it('runs the issue example: exit code 3 and captured stdout', async () => {
    const r = await go({ cmd: ['sh', '-c', 'echo hi; exit 3'], memory: '64m', pids: 64, network: 'none' })
    expect(r.exitCode).toBe(3)
    expect(r.signal).toBeNull()
    expect(r.stdout).toBe('hi\n')
    expect(r.stderr).toBe('')
    expect(r.oomKilled).toBe(false)
    expect(r.timedOut).toBe(false)
    expect(r.usage.cpuUsec).toBeGreaterThan(0)
    expect(r.timings.total).toBeGreaterThan(0)
  })

  it('captures stderr apart from stdout, and feeds stdin from a string, bytes or a stream', async () => {
    const r = await go({ cmd: ['sh', '-c', 'cat; echo err >&2'], stdin: 'from a string\n' })
    expect(r.stdout).toBe('from a string\n')
    expect(r.stderr).toBe('err\n')
    expect((await go({ cmd: ['cat'], stdin: Buffer.from('bytes') })).stdout).toBe('bytes')
    expect((await go({ cmd: ['cat'], stdin: Readable.from(['a', 'b', 'c']) })).stdout).toBe('abc')
  })

  it('streams output to a writable', async () => {
    const chunks: Buffer[] = []
    const sink = new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb() } })
    const r = await go({ cmd: ['sh', '-c', 'echo one; echo two'], stdout: sink })
    expect(Buffer.concat(chunks).toString()).toBe('one\ntwo\n')
    expect(r.stdout).toBe('')
  })

  it('reports a signal that ended the program: init passes it on as 128 + n, as tini', async () => {
    // Without init the shell is PID 1, which the kernel shields from its own SIGKILL.
    const r = await go({ cmd: ['sh', '-c', 'kill -9 $$'], init: true })
    expect(r.exitCode).toBe(137)
  })

  it('a missing program fails to start with a typed error, and nothing is left', async () => {
    await expect(go({ cmd: ['/no/such/program'] })).rejects.toMatchObject({ code: 'ERR_RUNTIME_START', message: expect.stringMatching(/ENOENT/) })
    expect(await env.runtime.list()).toEqual([])
  })
})

describe('the image config, as Docker honours it', () => {
  it('env is merged (image PATH, user values win), HOSTNAME and HOME are set', async () => {
    const r = await go({ cmd: ['sh', '-c', 'echo $PATH; echo $GREETING; echo $HOME; hostname; echo $HOSTNAME'], env: { GREETING: 'hello' }, hostname: 'box' })
    expect(r.stdout).toBe('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nhello\n/root\nbox\nbox\n')
  })

  it('workdir and user are honoured; a user name resolves through the image /etc/passwd', async () => {
    const r = await go({ cmd: ['sh', '-c', 'pwd; id -u; id -g'], workdir: '/tmp', user: 'nobody' })
    expect(r.stdout).toBe('/tmp\n65534\n65534\n')
    await expect(go({ cmd: ['true'], user: 'nosuchuser' })).rejects.toMatchObject({ code: 'ERR_RUNTIME_USER_NOT_FOUND' })
    expect(await env.runtime.list()).toEqual([])
  })

  it('the default hostname is the short id', async () => {
    const r = await go({ cmd: ['hostname'] })
    expect(r.stdout.trim()).toBe(r.id.slice(0, 12))
  })
})

describe('limits hold', () => {
  it('the memory limit OOM-kills a hog and the result says so', async () => {
    // busybox tail keeps the current line in memory: zeros without a newline grow it forever.
    const r = await go({ cmd: ['sh', '-c', 'head -c 400m /dev/zero | tail'], memory: '32m' })
    expect(r.oomKilled).toBe(true)
    expect(r.exitCode === 137 || r.signal === 'SIGKILL' || r.exitCode !== 0).toBe(true)
    expect(r.usage.memoryPeak ?? 0).toBeGreaterThan(16 * 1024 * 1024)
  })

  it('a pids limit stops a fork bomb', async () => {
    const r = await go({
      cmd: ['sh', '-c', 'n=0; for i in $(seq 1 60); do sleep 5 & n=$((n+1)); done 2>/dev/null; ls /proc | grep -c "^[0-9]"; kill $(jobs -p) 2>/dev/null; true'],
      pids: 16,
      timeout: 20_000,
    })
    expect(r.timedOut).toBe(false)
    expect(Number(r.stdout.trim())).toBeLessThanOrEqual(16)
  })

  it('a cpu quota bounds usage', async () => {
    const r = await go({ cmd: ['sh', '-c', 'while :; do :; done'], cpus: 0.2, timeout: 1500 })
    expect(r.timedOut).toBe(true)
    // 20 % of one CPU for 1.5 s is 0.3 s; unlimited, a spinning shell uses ~1.5 s.
    expect(r.usage.cpuUsec).toBeLessThan(700_000)
    expect(r.usage.cpuUsec).toBeGreaterThan(50_000)
  })
})

describe('timeouts and aborts kill the whole container', () => {
  it('a timeout kills every process, not only init', async () => {
    const r = await go({ cmd: ['sh', '-c', 'sleep 60 & sleep 60 & wait'], timeout: 300 })
    expect(r.timedOut).toBe(true)
    expect(r.signal).toBe('SIGKILL')
    await env.runtime.idle()
    expect(await env.cgroupDirs()).toEqual([])
  })

  it('an AbortSignal kills it and says so', async () => {
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 200)
    const r = await go({ cmd: ['sleep', '60'], signal: ac.signal })
    expect(r.aborted).toBe(true)
    expect(r.signal).toBe('SIGKILL')
  })

  it('an already aborted signal creates nothing', async () => {
    await expect(go({ cmd: ['true'], signal: AbortSignal.abort() })).rejects.toThrow()
    expect(await env.runtime.list()).toEqual([])
  })
})

describe('secure by default', () => {
  it('Docker default capabilities, no_new_privs, seccomp filter, masked /proc paths, read-only /sys', async () => {
    const r = await go({ cmd: ['sh', '-c', 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; cat /proc/kcore | wc -c; echo kcore-done; touch /sys/x 2>&1; echo done'] })
    expect(r.stdout).toMatch(/CapEff:\s+00000000a80425fb/)
    expect(r.stdout).toMatch(/CapBnd:\s+00000000a80425fb/)
    expect(r.stdout).toMatch(/NoNewPrivs:\s+1/)
    expect(r.stdout).toMatch(/Seccomp:\s+2/)
    expect(r.stdout).toMatch(/^0$/m)
    expect(r.stdout).toMatch(/Read-only file system/)
  })

  it('syscalls outside the profile fail with EPERM (unshare, mount)', async () => {
    const r = await go({ cmd: ['sh', '-c', 'unshare -m true; echo rc=$?; mount -t tmpfs x /mnt; echo rc=$?'] })
    expect(r.stdout).toBe('rc=1\nrc=1\n')
    expect(r.stderr).toMatch(/Operation not permitted/)
  })

  it('unconfined and privileged lift the filter', async () => {
    const r = await go({ cmd: ['grep', 'Seccomp:', '/proc/self/status'], seccomp: 'unconfined' })
    expect(r.stdout).toMatch(/Seccomp:\s+0/)
  })

  it('pid, ipc, uts, mnt and net namespaces differ from the host', async () => {
    const r = await go({ cmd: ['sh', '-c', 'for n in pid ipc uts mnt net; do readlink /proc/1/ns/$n; done; echo $$'] })
    const host = ['pid', 'ipc', 'uts', 'mnt', 'net'].map((n) => fs.readlinkSync(`/proc/self/ns/${n}`))
    const inside = r.stdout.trim().split('\n')
    expect(inside.slice(0, 5).some((x, i) => x === host[i])).toBe(false)
    expect(inside[5]).toBe('1')
  })
})

describe('root file system, mounts and network', () => {
  it('writes land in the container only: the next run sees the image again', async () => {
    expect((await go({ cmd: ['sh', '-c', 'echo x > /etc/new && rm /bin/ls && echo ok'] })).stdout).toBe('ok\n')
    expect((await go({ cmd: ['sh', '-c', 'test -e /etc/new || test ! -e /bin/ls || echo pristine'] })).stdout).toBe('pristine\n')
  })

  it('a read-only root refuses writes; tmpfs mounts stay writable', async () => {
    const r = await go({ cmd: ['sh', '-c', 'touch /x 2>&1; touch /scratch/y && echo tmpfs-ok'], readonly: true, mounts: [{ type: 'tmpfs', target: '/scratch', size: '1m' }] })
    expect(r.stdout).toMatch(/Read-only file system/)
    expect(r.stdout).toMatch(/tmpfs-ok/)
  })

  it('bind, read-only bind and named volume mounts', async () => {
    const host = path.join(env.dir, 'bind')
    fs.mkdirSync(host, { recursive: true })
    fs.writeFileSync(path.join(host, 'in.txt'), 'from host\n')
    const r = await go({
      cmd: ['sh', '-c', 'cat /data/in.txt; echo out > /data/out.txt; touch /ro/x 2>&1; echo kept > /vol/file'],
      mounts: [
        { type: 'bind', source: host, target: '/data' },
        { type: 'bind', source: host, target: '/ro', readonly: true },
        { type: 'volume', name: 'vol1', target: '/vol' },
      ],
    })
    expect(r.stdout).toMatch(/^from host\n/)
    expect(r.stdout).toMatch(/Read-only file system/)
    expect(fs.readFileSync(path.join(host, 'out.txt'), 'utf8')).toBe('out\n')
    const again = await go({ cmd: ['cat', '/vol/file'], mounts: [{ type: 'volume', name: 'vol1', target: '/vol' }] })
    expect(again.stdout).toBe('kept\n')
  })

  it("network none: its own namespace with only lo, up; host: the host's interfaces", async () => {
    const none = await go({ cmd: ['sh', '-c', 'ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping-ok'], network: 'none' })
    expect(none.stdout).toBe('lo\nunknown\nping-ok\n')
    const host = await go({ cmd: ['ls', '/sys/class/net'], network: 'host' })
    expect(host.stdout.trim().split('\n').sort()).toEqual(fs.readdirSync('/sys/class/net').sort())
  })

  it('network none, started back to back (the later ones join a namespace made ahead): each has its own, never the host\'s, with only lo, up', async () => {
    const host = fs.readlinkSync('/proc/self/ns/net')
    const cs = []
    try {
      for (let i = 0; i < 4; i++) {
        const c = await env.runtime.create({ image: env.image, cmd: ['sh', '-c', 'ls /sys/class/net; cat /sys/class/net/lo/flags; exec sleep 30'], network: 'none' })
        cs.push(c)
        await c.start({ stdout: 'pipe' })
      }
      // All alive at once, so no namespace id can have been freed and handed out again.
      const ids = cs.map((c) => fs.readlinkSync(`/proc/${c.pid}/ns/net`))
      expect(new Set([...ids, host]).size).toBe(cs.length + 1)
      for (const c of cs) {
        let out = ''
        for await (const chunk of c.stdout!) {
          out += String(chunk)
          if (out.split('\n').length > 2) break
        }
        expect(out).toBe('lo\n0x9\n') // IFF_UP | IFF_LOOPBACK
      }
    } finally {
      for (const c of cs) await c.delete({ force: true })
    }
  })

  it('/etc/hosts and /etc/hostname name the container', async () => {
    const r = await go({ cmd: ['sh', '-c', 'cat /etc/hostname; grep box1 /etc/hosts'], hostname: 'box1' })
    expect(r.stdout).toBe('box1\n127.0.1.1\tbox1\n')
  })
})

describe('tty and init', () => {
  it('with tty the program sees a terminal and output arrives', async () => {
    const r = await go({ cmd: ['sh', '-c', 'tty; test -t 1 && echo is-a-tty'], tty: true })
    expect(r.stdout).toMatch(/^\/dev\/console\r?$/m)
    expect(r.stdout).toMatch(/is-a-tty/)
  })

  it('init is PID 1, reaps orphaned zombies and passes the exit code through', async () => {
    const r = await go({
      cmd: ['sh', '-c', '(sleep 0.1 & exec sleep 0.3) & sleep 0.6; cat /proc/1/cmdline | tr "\\0" " "; echo; grep -l "^State:.*Z" /proc/[0-9]*/status | wc -l; exit 7'],
      init: true,
    })
    expect(r.exitCode).toBe(7)
    const [pid1, zombies] = r.stdout.trim().split('\n')
    expect(pid1).toMatch(/^\/dev\/init -- sh/)
    expect(zombies).toBe('0')
  })
})

describe('hostile options are rejected before anything is created', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['a bad memory size', { memory: 'lots' }, 'memory'],
    ['a mount target with ..', { mounts: [{ type: 'bind', source: '/tmp', target: '/../../etc' }] }, 'mounts.0.target'],
    ['a relative bind source', { mounts: [{ type: 'bind', source: 'tmp', target: '/x' }] }, 'mounts.0.source'],
    ['an unknown option', { memroy: '1g' }, 'memroy'],
    ['a NUL in cmd', { cmd: ['a\0b'] }, 'cmd.0'],
    ['an unknown capability', { capAdd: ['NET_ADMN'] }, 'capAdd.0'],
    ['a bad network', { network: 'bridge0' }, 'network'],
    ['negative pids', { pids: -1 }, 'pids'],
    ['a bad user', { user: 'root;rm' }, 'user'],
    ['a relative oci: path', { image: 'oci:relative/dir' }, 'image'],
  ]
  for (const [what, opts, field] of cases) {
    it(`${what} → ERR_RUNTIME_INVALID_OPTIONS naming ${field}`, async () => {
      const err = await go({ cmd: ['true'], ...opts } as never).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RuntimeError)
      expect(err).toMatchObject({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field })
      expect(await env.runtime.list()).toEqual([])
      expect(await env.cgroupDirs()).toEqual([])
    })
  }
})

describe('removal', () => {
  it('run() frees the name at once; the rest goes in the background until idle()', async () => {
    const first = await go({ cmd: ['true'], name: 'again' })
    const second = await go({ cmd: ['true'], name: 'again' }) // the name is free already
    expect(second.id).not.toBe(first.id)
    await env.runtime.idle()
    expect(await env.runtime.list()).toEqual([])
    expect(await env.cgroupDirs()).toEqual([])
    expect(fs.readdirSync(path.join(env.dir, 'store', 'snapshots')).filter((n) => !n.startsWith('.'))).toEqual([])
  })

  it('waitForRemoval: the container is gone when run() resolves', async () => {
    const r = await go({ cmd: ['true'], waitForRemoval: true })
    expect(await env.runtime.list()).toEqual([])
    expect((await env.cgroupDirs()).filter((d) => d.endsWith(r.id))).toEqual([])
    expect(fs.existsSync(path.join(env.dir, 'store', 'snapshots', r.id))).toBe(false)
  })

  it('remove: false keeps the container, with its exit on disk', async () => {
    const r = await go({ cmd: ['sh', '-c', 'exit 4'], remove: false })
    const s = (await env.runtime.list()).find((x) => x.id === r.id)
    expect(s).toMatchObject({ status: 'exited', exitCode: 4 })
    expect(s?.config.autoRemove).toBeUndefined()
    await (await env.runtime.get(r.id)).delete()
    expect(await env.runtime.list()).toEqual([])
  })
})

describe('nothing leaks', () => {
  const fds = () => fs.readdirSync('/proc/self/fd').length

  it('100 runs in a row and 20 at once leave no mount, cgroup, fd or process', async () => {
    await go({ cmd: ['true'] }) // warm: the image is imported and unpacked once
    const before = fds()
    for (let i = 0; i < 100; i++) {
      const r = await go({ cmd: ['true'] })
      expect(r.exitCode).toBe(0)
    }
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => go({ cmd: ['sh', '-c', `echo ${i}`] })))
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`))
    await env.runtime.idle()
    expect(await env.runtime.list()).toEqual([])
    expect(await env.cgroupDirs()).toEqual([])
    expect(env.mounts()).toEqual([])
    expect(fs.readdirSync(path.join(env.dir, 'store', 'snapshots')).filter((n) => !n.startsWith('.'))).toEqual([])
    expect(fds()).toBeLessThanOrEqual(before + 2)
  })
})
