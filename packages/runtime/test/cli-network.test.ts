/**
 * `ctr network create|ls|inspect|rm` and `ctr run --network/-p/--dns`, end to end as root,
 * inside a netns that plays the host: every command gets `$CTR_HOST_NETNS` (or
 * `--host-netns`), so bridges, veths, NAT rules and port proxies never touch the machine's
 * own network namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCliEnv, type CliEnv, type CtrOptions, type Result } from './helpers/cli-env.js'
import { makeNetHost, type NetHost } from './helpers/net-host.js'

let env: CliEnv
let host: NetHost
let clean: Awaited<ReturnType<NetHost['snapshot']>>

beforeAll(async () => {
  env = await makeCliEnv()
  host = await makeNetHost()
  clean = await host.snapshot()
})

afterAll(async () => {
  let left: Awaited<ReturnType<CliEnv['dispose']>> | undefined
  if (env) {
    // Networks first go with their containers; then whatever networks are left.
    for (const s of (await env.leftovers()).states) await ctr(['rm', '-f', s]).catch(() => undefined)
    const nets = await ctr(['network', 'ls', '-q']).catch(() => undefined)
    for (const n of nets?.stdout.split('\n').filter(Boolean) ?? []) await ctr(['network', 'rm', n]).catch(() => undefined)
    left = await env.dispose()
  }
  await host?.dispose()
  if (left) expect(left, 'left behind by the network tests').toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
})

/** `ctr …` with the test netns as the host. */
function ctr(args: string[], o: CtrOptions = {}): Promise<Result> {
  return env.ctr(args, { ...o, env: { CTR_HOST_NETNS: String(host.pid), ...o.env } })
}

async function ok(args: string[], o: CtrOptions = {}): Promise<string> {
  const r = await ctr(args, o)
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code ?? r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r.stdout
}

/** Retries `f` for up to ~5 s (a server that has just started may not listen yet). */
async function retry<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f()
    } catch (err) {
      if (i >= 50) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

/** An HTTP GET from a Node process in the test-host netns. */
const GET = "require('http').get(process.argv[1],(r)=>{let b='';r.on('data',(d)=>b+=d);r.on('end',()=>{process.stdout.write(b);process.exit(r.statusCode===200?0:1)})}).on('error',(e)=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),3000)"

interface NetworkView {
  Name: string
  Driver: string
  Bridge: string
  Subnet: string
  Gateway: string
  HostNetns?: number | string
  Containers: Record<string, { Name: string; IPv4Address: string }>
}

describe('ctr network', () => {
  it('create, ls (table and -q), inspect and rm; the bridge lives in the host netns', async () => {
    expect(await ok(['network', 'create', '--subnet', '10.77.3.0/24', '--gateway', '10.77.3.254', 'alpha'])).toBe('alpha\n')
    expect(await ok(['network', 'create', 'beta'])).toBe('beta\n')

    const table = (await ok(['network', 'ls'])).split('\n').filter(Boolean)
    expect(table[0]).toMatch(/^NAME\s+SUBNET\s+GATEWAY\s+BRIDGE\s+CONTAINERS$/)
    expect(table[1]).toMatch(/^alpha\s+10\.77\.3\.0\/24\s+10\.77\.3\.254\s+ctr-alpha$/)
    expect(table[2]).toMatch(/^beta\s+10\.89\.\d+\.0\/24\s+10\.89\.\d+\.1\s+ctr-beta$/)
    expect(await ok(['network', 'ls', '-q'])).toBe('alpha\nbeta\n')

    const [a] = JSON.parse(await ok(['network', 'inspect', 'alpha'])) as NetworkView[]
    expect(a).toMatchObject({ Name: 'alpha', Driver: 'bridge', Bridge: 'ctr-alpha', Subnet: '10.77.3.0/24', Gateway: '10.77.3.254', HostNetns: host.pid, Containers: {} })
    expect(await host.exec(['ip', '-br', 'addr', 'show', 'ctr-alpha'])).toContain('10.77.3.254/24')

    const dup = await ctr(['network', 'create', 'alpha'])
    expect(dup.code).toBe(125)
    expect(dup.stderr).toMatch(/network alpha already exists/)
    const clash = await ctr(['network', 'create', '--subnet', '10.77.3.128/25', 'gamma'])
    expect(clash.code).toBe(125)
    expect(clash.stderr).toMatch(/overlaps network alpha/)

    expect(await ok(['network', 'rm', 'alpha', 'beta'])).toBe('alpha\nbeta\n')
    expect(await ok(['network', 'ls', '-q'])).toBe('')
    expect(await host.snapshot()).toEqual(clean)
  })

  it('run -d --network N --name web, and another container on N fetches from web by name; -p answers in the host netns', async () => {
    await ok(['network', 'create', 'app'])
    const id = (await ok(['run', '-d', '--network', 'app', '--name', 'web', '-p', '18080:8080', env.image, 'httpd', '-f', '-p', '8080', '-h', '/etc'])).trim()
    expect(id).toMatch(/^[0-9a-f]{64}$/)
    try {
      const r = await retry(async () => {
        const x = await ctr(['run', '--rm', '--network', 'app', env.image, 'wget', '-qO-', 'http://web:8080/hostname'])
        if (x.code !== 0) throw new Error(`wget: ${x.code}: ${x.stderr}`)
        return x
      })
      expect(r.stdout).toBe('web\n')

      // The published port, from a process in the "host" netns.
      expect(await retry(() => host.exec([process.execPath, '-e', GET, 'http://127.0.0.1:18080/hostname']))).toBe('web\n')

      const row = (await ok(['network', 'ls'])).split('\n').find((l) => l.startsWith('app '))
      expect(row).toMatch(/\sweb$/)
      const [view] = JSON.parse(await ok(['network', 'inspect', 'app'])) as NetworkView[]
      expect(view!.Containers[id]).toMatchObject({ Name: 'web', IPv4Address: expect.stringMatching(/^10\.89\.\d+\.\d+$/) as unknown as string })
      const [c] = JSON.parse(await ok(['inspect', 'web'])) as { HostConfig: { NetworkMode: string; PortBindings: unknown } }[]
      expect(c!.HostConfig.NetworkMode).toBe('app')
      expect(c!.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '', HostPort: '18080' }] })

      // In use: refused, naming the container.
      const busy = await ctr(['network', 'rm', 'app'])
      expect(busy.code).toBe(125)
      expect(busy.stderr).toMatch(/network app has containers: web/)
    } finally {
      await ok(['rm', '-f', 'web'])
    }
    await expect(host.exec([process.execPath, '-e', GET, 'http://127.0.0.1:18080/hostname'])).rejects.toThrow()
    expect(await ok(['network', 'rm', 'app'])).toBe('app\n')
    expect(await host.snapshot()).toEqual(clean)
  })

  it('--dns sets the container’s name servers; --host-netns works as the environment variable', async () => {
    await ok(['network', 'create', 'dnsnet'])
    try {
      const r = await env.ctr(['run', '--rm', '--network', 'dnsnet', '--dns', '192.0.2.53', '--dns', '192.0.2.54', env.image, 'cat', '/etc/resolv.conf'], { globals: ['--host-netns', String(host.pid)] })
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout).toBe('nameserver 192.0.2.53\nnameserver 192.0.2.54\n')
    } finally {
      await ok(['network', 'rm', 'dnsnet'])
    }
    expect(await host.snapshot()).toEqual(clean)
  })
})

describe('detached containers and --host-netns', () => {
  it('run -d --network bridge: the monitor makes the default network in the host netns, and it goes with its container', async () => {
    const id = (await ok(['run', '-d', '--network', 'bridge', '--name', 'dflt', env.image, 'sleep', '600'])).trim()
    try {
      expect(id).toMatch(/^[0-9a-f]{64}$/)
      expect((await ok(['network', 'ls', '-q'])).split('\n')).toContain('bridge')
      const [view] = JSON.parse(await ok(['network', 'inspect', 'bridge'])) as NetworkView[]
      expect(view).toMatchObject({ HostNetns: host.pid })
      expect(await host.exec(['ip', '-br', 'link', 'show', 'ctr-bridge'])).toContain('ctr-bridge')
      const r = await ok(['exec', 'dflt', 'ip', 'route'])
      expect(r).toMatch(/default via 10\.89\.\d+\.1 dev eth0/)
    } finally {
      await ok(['rm', '-f', 'dflt'])
    }
    expect(await ok(['network', 'ls', '-q'])).toBe('')
    expect(await host.snapshot()).toEqual(clean)
  })
})

describe('errors (exit 125, naming what is wrong)', () => {
  it('an unknown network, in the foreground and detached', async () => {
    for (const d of [[], ['-d']]) {
      const r = await ctr(['run', '--rm', ...d, '--network', 'nosuchnet', env.image, 'true'])
      expect(r.code).toBe(125)
      expect(r.stderr).toMatch(/--network: .*no such network: nosuchnet/)
      expect(r.stdout).toBe('')
    }
    expect((await env.leftovers()).states).toEqual([])
  })

  const cases: [string[], RegExp][] = [
    [['run', '-p', '8080', 'IMG'], /invalid argument "8080" for "-p, --publish" flag/],
    [['run', '-p', '70000:80', '--network', 'x', 'IMG'], /for "-p, --publish" flag: port 70000 out of range/],
    [['run', '-p', '8080:80', 'IMG'], /-p, --publish needs a bridge network/],
    [['run', '-p', '8080:80', '--network', 'host', 'IMG'], /-p, --publish needs a bridge network/],
    [['run', '--dns', 'one.one', '--network', 'x', 'IMG'], /invalid argument "one.one" for "--dns" flag/],
    [['run', '--network', 'bad/name', 'IMG'], /invalid argument "bad\/name" for "--network" flag/],
    [['network', 'rm', 'nosuchnet'], /no such network: nosuchnet/],
    [['network', 'inspect', 'nosuchnet'], /no such network: nosuchnet/],
    [['network', 'create', '--subnet', 'ten', 'n1'], /--subnet: /],
    [['network', 'create', '--subnet', '10.78.0.0/24', '--gateway', '10.79.0.1', 'n1'], /--gateway: /],
    [['network', 'create', 'none'], /network mode/],
    [['network', 'create'], /"ctr network create" requires exactly 1 argument/],
    [['network', 'frob'], /'frob' is not a ctr network command/],
    [['--host-netns', 'nope', 'network', 'ls'], /invalid argument "nope" for "--host-netns" flag/],
  ]
  it.each(cases)('ctr %j', async (args, message) => {
    const r = await ctr(args.map((a) => (a === 'IMG' ? env.image : a)))
    expect(r.stderr).toMatch(/^ctr: /)
    expect(r.stderr).toMatch(message)
    expect(r.code).toBe(125)
  })

  it('left nothing behind', async () => {
    expect(await ok(['network', 'ls', '-q'])).toBe('')
    expect(await host.snapshot()).toEqual(clean)
  })
})

describe('help', () => {
  it('ctr network --help lists the subcommands; ctr network create --help its flags', async () => {
    expect(await ok(['network', '--help'])).toMatch(/create[\s\S]*inspect[\s\S]*ls[\s\S]*rm/)
    expect(await ok(['network', 'create', '--help'])).toMatch(/--subnet cidr[\s\S]*--gateway ip/)
    expect(await ok(['run', '--help'])).toMatch(/-p, --publish list[\s\S]*--dns list/)
  })
})
