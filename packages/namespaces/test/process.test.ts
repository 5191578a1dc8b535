/**
 * Process attributes set by the child's steps: capabilities, rlimits, user and groups,
 * no_new_privs, umask, setsid. The parent's own state never changes.
 */
import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { SpawnError } from '../src/index.js'
import { run, start, statusField } from './helpers/util.js'

const CAPS = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status"

function parseCaps(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n').filter(Boolean)) {
    const [k, v] = line.split(':')
    out[k!.trim()] = (v ?? '').trim()
  }
  return out
}

describe('capabilities', () => {
  it('restricts every set to CAP_CHOWN', async () => {
    const r = await run({
      argv: ['/bin/sh', '-c', CAPS],
      capabilities: { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], permitted: ['CAP_CHOWN'], inheritable: [], ambient: [] },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(parseCaps(r.stdout)).toEqual({
      CapInh: '0000000000000000',
      CapPrm: '0000000000000001',
      CapEff: '0000000000000001',
      CapBnd: '0000000000000001',
      CapAmb: '0000000000000000',
    })
  })

  it('a dropped capability is really gone: chown fails without CAP_CHOWN', async () => {
    const r = await run({
      argv: ['/bin/sh', '-c', 'touch /tmp/.ctr-ns-cap-test-$$ && chown 1234 /tmp/.ctr-ns-cap-test-$$; rc=$?; rm -f /tmp/.ctr-ns-cap-test-$$; exit $rc'],
      capabilities: { bounding: ['CAP_DAC_OVERRIDE'], effective: ['CAP_DAC_OVERRIDE'], permitted: ['CAP_DAC_OVERRIDE'], inheritable: [], ambient: [] },
    })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/Operation not permitted/)
  })

  it('ambient capabilities survive the switch to a non-root user', async () => {
    const caps = ['CAP_NET_BIND_SERVICE']
    const r = await run({
      argv: ['/bin/sh', '-c', CAPS],
      user: { uid: 1000, gid: 1000 },
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: caps },
    })
    expect(r.code, r.stderr).toBe(0)
    const c = parseCaps(r.stdout)
    expect(c.CapEff).toBe('0000000000000400')
    expect(c.CapAmb).toBe('0000000000000400')
  })

  it('by default a root child keeps the caller capabilities', async () => {
    const r = await run({ argv: ['/bin/sh', '-c', CAPS] })
    expect(parseCaps(r.stdout).CapBnd).toBe(statusField('self', 'CapBnd'))
  })
})

describe('rlimits', () => {
  it('nofile {soft: 100, hard: 200}: ulimit -n prints 100, -Hn 200; ours is unchanged', async () => {
    const limitsBefore = fs.readFileSync('/proc/self/limits', 'utf8')
    const r = await run({ argv: ['/bin/busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn'], rlimits: { nofile: { soft: 100, hard: 200 } } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('100\n200\n')
    expect(fs.readFileSync('/proc/self/limits', 'utf8')).toBe(limitsBefore)
  })

  it("'unlimited' and other resources", async () => {
    const r = await run({
      argv: ['/bin/busybox', 'sh', '-c', 'ulimit -c; ulimit -s'],
      rlimits: { core: { soft: 'unlimited', hard: 'unlimited' }, stack: { soft: 4 * 1024 * 1024, hard: 8 * 1024 * 1024 } },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('unlimited\n4096\n')
  })

  it('a hard limit above what this host allows fails with EPERM naming the limit', async () => {
    const hard = Number(/Max open files\s+\d+\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'))![1])
    // raising a hard limit needs CAP_SYS_RESOURCE, which may be missing even for root
    const canRaise = (BigInt('0x' + statusField('self', 'CapEff')) & (1n << 24n)) !== 0n
    if (canRaise) return
    const err = await start({ argv: ['/bin/true'], rlimits: { nofile: { soft: 1024, hard: hard + 1 } } }).then(
      async (c) => {
        c.kill('SIGKILL')
        await c.exited
        return undefined
      },
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(SpawnError)
    expect((err as SpawnError).code).toBe('EPERM')
    expect(`${(err as SpawnError).step} ${(err as SpawnError).message}`).toMatch(/nofile/i)
  })
})

describe('user', () => {
  it('user {uid: 1000, gid: 1000}: id -u prints 1000, id -g 1000', async () => {
    const r = await run({ argv: ['/bin/busybox', 'sh', '-c', 'id -u; id -g'], user: { uid: 1000, gid: 1000 } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toBe('1000\n1000\n')
  })

  it('all four uids and gids are switched, and groups are set', async () => {
    const child = await start({ argv: ['/bin/sleep', '5'], user: { uid: 1000, gid: 1001, groups: [2000, 2001] } })
    try {
      expect(statusField(child.pid, 'Uid').split(/\s+/)).toEqual(['1000', '1000', '1000', '1000'])
      expect(statusField(child.pid, 'Gid').split(/\s+/)).toEqual(['1001', '1001', '1001', '1001'])
      expect(statusField(child.pid, 'Groups').split(/\s+/).sort()).toEqual(['2000', '2001'])
      // a non-root user holds no capabilities by default
      expect(statusField(child.pid, 'CapEff')).toBe('0000000000000000')
    } finally {
      child.kill('SIGKILL')
      await child.exited
    }
  })

  it('in a new user namespace the default user is root inside', async () => {
    const r = await run({ argv: ['/bin/busybox', 'sh', '-c', 'id -u; id -g'], namespaces: ['user'] })
    expect(r.stdout).toBe('0\n0\n')
  })
})

describe('other process attributes', () => {
  it('noNewPrivileges sets NoNewPrivs', async () => {
    const on = await run({ argv: ['/bin/grep', '^NoNewPrivs', '/proc/self/status'], noNewPrivileges: true })
    const off = await run({ argv: ['/bin/grep', '^NoNewPrivs', '/proc/self/status'] })
    expect(on.stdout.split(/\s+/)[1]).toBe('1')
    expect(off.stdout.split(/\s+/)[1]).toBe('0')
  })

  it('umask is set in the child, ours is unchanged', async () => {
    const ours = process.umask()
    const r = await run({ argv: ['/bin/sh', '-c', 'umask'], umask: 0o027 })
    expect(r.stdout.trim()).toBe('0027')
    expect(process.umask()).toBe(ours)
  })

  it('setsid makes the child a session leader', async () => {
    const ours = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[3])
    const withSid = await run({ argv: ['/bin/cat', '/proc/self/stat'], setsid: true })
    const without = await run({ argv: ['/bin/cat', '/proc/self/stat'] })
    const sid = (text: string) => Number(text.split(') ')[1]!.split(' ')[3])
    expect(sid(withSid.stdout)).toBe(withSid.pid)
    expect(sid(without.stdout)).toBe(ours)
  })
})
