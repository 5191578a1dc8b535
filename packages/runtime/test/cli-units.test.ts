/**
 * The pure parts of `ctr`: argument parsing (Docker's grammar on node:util parseArgs), run
 * flags → create() options, --change instructions, output formats, the pull progress view
 * (terminal bars and plain lines) and Docker config.json writing.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCommand, UsageError, type CommandSpec } from '../src/cli/args.js'
import { parseChanges } from '../src/cli/commands/containers.js'
import { normalizeServer, removeCredentials, saveCredentials } from '../src/cli/docker-config.js'
import { formatTemplate, humanDuration, humanSize, splitRef, table } from '../src/cli/format.js'
import { PullProgressView } from '../src/cli/progress.js'
import { planRun, RUN_SPEC } from '../src/cli/run-options.js'

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-cli-units-'))
})
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

describe('parseCommand', () => {
  const spec: CommandSpec = {
    name: 't',
    usage: '',
    summary: '',
    flags: [
      { name: 'interactive', short: 'i', type: 'boolean', description: '' },
      { name: 'tty', short: 't', type: 'boolean', description: '' },
      { name: 'rm', type: 'boolean', description: '' },
      { name: 'env', short: 'e', type: 'string', multiple: true, description: '' },
      { name: 'memory-swap', type: 'string', description: '' },
      { name: 'pause', type: 'boolean', defaultTrue: true, description: '' },
    ],
  }
  const run = { ...spec, stopAtPositional: true }

  it('stops at the first positional for run-like commands: the command keeps its flags', () => {
    const p = parseCommand(run, ['-it', '-e', 'A=1', '--env=B=2', 'image', 'ls', '-l', '--rm', '-e'])
    expect(p.values).toMatchObject({ interactive: true, tty: true, env: ['A=1', 'B=2'] })
    expect(p.values['rm']).toBeUndefined()
    expect(p.args).toEqual(['image', 'ls', '-l', '--rm', '-e'])
  })

  it('takes interspersed flags elsewhere, and -- ends the flags', () => {
    expect(parseCommand(spec, ['a', '--rm', 'b']).args).toEqual(['a', 'b'])
    expect(parseCommand(run, ['--rm', '--', '-image-', 'x']).args).toEqual(['-image-', 'x'])
  })

  it('reads --flag=false / --flag=true for booleans, and negative numbers as values', () => {
    expect(parseCommand(spec, ['--rm=false']).values['rm']).toBe(false)
    expect(parseCommand(spec, ['--rm=true']).values['rm']).toBe(true)
    expect(parseCommand(spec, []).values['pause']).toBe(true)
    expect(parseCommand(spec, ['--pause=false']).values['pause']).toBe(false)
    expect(parseCommand(spec, ['--memory-swap', '-1']).values['memory-swap']).toBe('-1')
    // after the image, nothing is rewritten
    expect(parseCommand(run, ['img', '--memory-swap', '-1', '--rm=false']).args).toEqual(['img', '--memory-swap', '-1', '--rm=false'])
  })

  it('names the flag in errors', () => {
    const err = (argv: string[]) => {
      try {
        parseCommand(run, argv)
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError)
        return (e as Error).message
      }
      throw new Error('no error')
    }
    expect(err(['--nope', 'img'])).toBe('unknown flag: --nope')
    expect(err(['-x', 'img'])).toBe('unknown shorthand flag: -x')
    expect(err(['-e'])).toMatch(/^flag needs an argument: -e, --env/)
    expect(err(['--rm=maybe', 'img'])).toMatch(/--rm/)
  })

  it('generated help lists every flag', async () => {
    const { commandHelp } = await import('../src/cli/args.js')
    const help = commandHelp(RUN_SPEC)
    for (const f of RUN_SPEC.flags) expect(help).toContain(`--${f.name}`)
  })
})

describe('planRun', () => {
  it('maps Docker flags to create() options and the host config', async () => {
    const envFile = path.join(dir, 'env')
    fs.writeFileSync(envFile, '# comment\nX=1\n\nHOSTVAR\n')
    const bind = path.join(dir, 'bind')
    const p = parseCommand(RUN_SPEC, [
      '-d', '--rm', '--name', 'n', '-e', 'A=b=c', '--env-file', envFile, '-v', `${bind}:/b:ro`, '-v', 'vol:/v', '--tmpfs', '/t:size=8m,mode=1777',
      '-m', '64m', '--memory-swap', '-1', '--cpus', '1.5', '--pids-limit', '-1', '--network', 'host', '--read-only', '-u', '1:2', '-w', '/w', '-h', 'hn',
      '--init', '--entrypoint', '', '--cap-add', 'NET_ADMIN,SYS_TIME', '--cap-drop', 'MKNOD', '--label', 'a=1', '--ulimit', 'nofile=10:20', '--blkio-weight', '500',
      'img', 'cmd', 'arg',
    ])
    const plan = await planRun(p.values, p.args, { HOSTVAR: 'h' }, dir)
    expect(fs.statSync(bind).isDirectory()).toBe(true) // created, as docker -v does
    expect(plan).toMatchObject({ image: 'img', detach: true, remove: true, interactive: false, tty: false, pull: 'missing' })
    expect(plan.create).toEqual({
      image: 'img', pull: 'missing', name: 'n', cmd: ['cmd', 'arg'], entrypoint: [], env: ['X=1', 'HOSTVAR=h', 'A=b=c'], workdir: '/w', user: '1:2', hostname: 'hn',
      memory: '64m', memorySwap: -1, cpus: 1.5, ioWeight: 4950,
      mounts: [{ type: 'bind', source: bind, target: '/b', readonly: true }, { type: 'volume', name: 'vol', target: '/v' }, { type: 'tmpfs', target: '/t', size: '8m', mode: 0o1777 }],
      readonly: true, network: 'host', init: true, capAdd: ['NET_ADMIN', 'SYS_TIME'], capDrop: ['MKNOD'], labels: { a: '1' }, ulimits: { nofile: { soft: 10, hard: 20 } },
    })
    expect(plan.meta).toMatchObject({ autoRemove: true, detached: true, security: { capAdd: ['NET_ADMIN', 'SYS_TIME'], capDrop: ['MKNOD'] } })
    expect(plan.meta.host).toMatchObject({ Memory: 64 * 2 ** 20, MemorySwap: -1, NanoCpus: 1.5e9, PidsLimit: null, NetworkMode: 'host' })
  })

  it('rejects what cannot work, naming the flag', async () => {
    const bad = async (argv: string[]) => {
      const p = parseCommand(RUN_SPEC, [...argv, 'img'])
      await expect(planRun(p.values, p.args, {}, dir)).rejects.toThrow(UsageError)
      return planRun(p.values, p.args, {}, dir).catch((e: Error) => e.message)
    }
    expect(await bad(['--memory-swap', '1g'])).toMatch(/--memory-swap needs --memory/)
    expect(await bad(['-m', '1g', '--memory-swap', '512m'])).toMatch(/at least --memory/)
    expect(await bad(['-v', '/a'])).toMatch(/"-v, --volume"/)
    expect(await bad(['-v', '/a:relative'])).toMatch(/must be absolute/)
    expect(await bad(['--tmpfs', '/t:size=huge'])).toMatch(/size "huge"/)
    expect(await bad(['--ulimit', 'nofile=5:1'])).toMatch(/soft ≤ hard/)
    expect(await bad(['--blkio-weight', '5'])).toMatch(/10 to 1000/)
    expect(await bad(['--env-file', path.join(dir, 'missing')])).toMatch(/--env-file .*no such file/)
    expect(await bad(['-e', '=x'])).toMatch(/"-e, --env"/)
    expect(await bad(['--security-opt', 'seccomp=/nonexistent.json'])).toMatch(/cannot read the seccomp profile/)
    expect(await bad(['--network', 'net1', '-p', '[::1:8080:80'])).toMatch(/"-p, --publish"/)
    expect(await bad(['--network', 'net1', '-p', '[1.2.3.4]:8080:80'])).toMatch(/"-p, --publish"/)
    expect(await bad(['--network', 'net1', '-p', '[fe80::zz]:8080:80'])).toMatch(/"-p, --publish"/)
    expect(await bad(['--network', 'net1', '-p', '8080:70000'])).toMatch(/out of range/)
  })

  it('takes -p with an IPv4 address, an IPv6 one in brackets, or none', async () => {
    const p = parseCommand(RUN_SPEC, ['--network', 'net1', '-p', '8080:80', '-p', '127.0.0.1:5353:53/udp', '-p', '[::1]:8443:443', '-p', '[2001:db8::1]:9000:9000/udp', 'img'])
    const plan = await planRun(p.values, p.args, {}, dir)
    expect(plan.create.publish).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIp: '127.0.0.1' },
      { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIp: '::1' },
      { hostPort: 9000, containerPort: 9000, protocol: 'udp', hostIp: '2001:db8::1' },
    ])
  })
})

describe('--change', () => {
  it('reads Dockerfile instructions', () => {
    expect(parseChanges(['CMD ["a", "b c"]', 'ENTRYPOINT run me', 'ENV A=1 B="two words"', 'ENV C three', 'WORKDIR /w', 'USER nobody', 'LABEL x=1 y=2', 'EXPOSE 80 53/udp'])).toEqual({
      cmd: ['a', 'b c'],
      entrypoint: ['/bin/sh', '-c', 'run me'],
      env: ['A=1', 'B=two words', 'C=three'],
      workingDir: '/w',
      user: 'nobody',
      labels: { x: '1', y: '2' },
      exposedPorts: ['80', '53/udp'],
    })
    expect(() => parseChanges(['CMD ["a", 1]'])).toThrow(/JSON array of strings/)
    expect(() => parseChanges(['VOLUME /x'])).toThrow(/VOLUME is not supported/)
  })
})

describe('output formats', () => {
  it('sizes, durations, references, tables and templates', () => {
    expect(humanSize(1_056_430)).toBe('1.06MB')
    expect(humanSize(999)).toBe('999B')
    expect(humanDuration(500)).toBe('Less than a second')
    expect(humanDuration(90_000)).toBe('About a minute')
    expect(humanDuration(150_000)).toBe('2 minutes')
    expect(humanDuration(3 * 365 * 24 * 3600 * 1000)).toBe('3 years')
    expect(splitRef('docker.io/library/busybox:latest')).toEqual({ repository: 'busybox', tag: 'latest' })
    expect(splitRef('127.0.0.1:5000/a/b@sha256:00')).toEqual({ repository: '127.0.0.1:5000/a/b', tag: '<none>', digest: 'sha256:00' })
    expect(table(['A', 'LONG'], [['xyz', '1']])).toBe('A     LONG\nxyz   1\n')
    const o = { State: { Status: 'running', Pid: 7 }, Config: { Env: ['A=1'] } }
    expect(formatTemplate('{{.State.Status}}/{{.State.Pid}} {{json .Config.Env}} {{.Nope}}', o)).toBe('running/7 ["A=1"] <no value>')
  })
})

class Sink extends Writable {
  text = ''
  isTTY: boolean
  constructor(tty: boolean) {
    super()
    this.isTTY = tty
  }
  override _write(c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.text += c.toString()
    cb()
  }
}

describe('PullProgressView', () => {
  const ev = (digest: string, bytes: number, size: number, skipped = false) => ({ digest, kind: 'layer' as const, bytes, size, ...(skipped ? { skipped } : {}), totalBytes: 0, totalSize: 0 })
  const A = `sha256:${'a'.repeat(64)}`
  const B = `sha256:${'b'.repeat(64)}`

  it('prints a plain line per finished layer when not on a terminal', () => {
    const out = new Sink(false)
    const v = new PullProgressView(out as unknown as NodeJS.WriteStream)
    v.update(ev(A, 100, 2_000_000))
    v.update(ev(B, 5, 5, true))
    v.update(ev(A, 2_000_000, 2_000_000))
    v.update(ev(A, 2_000_000, 2_000_000))
    v.finish()
    expect(out.text).toBe('bbbbbbbbbbbb: Already exists\naaaaaaaaaaaa: Pull complete (2MB)\n')
  })

  it('draws per-layer bars (bytes/total) in place on a terminal', async () => {
    const out = new Sink(true)
    const v = new PullProgressView(out as unknown as NodeJS.WriteStream)
    v.update(ev(A, 500_000, 2_000_000))
    v.update(ev(B, 0, 1_000_000))
    await new Promise((r) => setTimeout(r, 150))
    expect(out.text).toContain('aaaaaaaaaaaa: Downloading [=========>')
    expect(out.text).toContain('500kB/2MB')
    expect(out.text).toContain('bbbbbbbbbbbb: Downloading [ ')
    v.update(ev(A, 2_000_000, 2_000_000))
    v.update(ev(B, 1_000_000, 1_000_000))
    v.finish()
    expect(out.text).toContain('\x1b[2A') // redrawn over the two previous lines
    expect(out.text.endsWith('\x1b[2Kaaaaaaaaaaaa: Pull complete\n\x1b[2Kbbbbbbbbbbbb: Pull complete\n')).toBe(true)
  })
})

describe('Docker config.json', () => {
  it('writes auths atomically with mode 0600, keeps other keys, and logout removes the entry', async () => {
    const file = path.join(dir, 'docker', 'config.json')
    fs.mkdirSync(path.dirname(file))
    fs.writeFileSync(file, JSON.stringify({ auths: { 'https://reg.example': { auth: 'eDp5' } }, credHelpers: { 'gcr.io': 'gcloud' } }))
    const r = await saveCredentials('reg.example', 'u', 'p:w', file)
    expect(r.warning).toBeUndefined()
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { auths: Record<string, { auth: string }>; credHelpers: unknown }
    expect(Object.keys(c.auths)).toEqual(['reg.example']) // the old alias went
    expect(Buffer.from(c.auths['reg.example']!.auth, 'base64').toString()).toBe('u:p:w')
    expect(c.credHelpers).toEqual({ 'gcr.io': 'gcloud' })
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(path.dirname(file))).toEqual(['config.json'])
    expect((await saveCredentials('gcr.io', 'u', 'p', file)).warning).toMatch(/docker-credential-gcloud/)
    expect(await removeCredentials('reg.example', file)).toBe(true)
    expect(await removeCredentials('reg.example', file)).toBe(false)
    fs.writeFileSync(file, '{not json')
    await expect(saveCredentials('x.example', 'u', 'p', file)).rejects.toThrow(/not valid JSON \(left untouched\)/)
    expect(fs.readFileSync(file, 'utf8')).toBe('{not json')
  })

  it('normalises server names as docker login does', () => {
    expect(normalizeServer(undefined)).toBe('docker.io')
    expect(normalizeServer('https://index.docker.io/v1/')).toBe('docker.io')
    expect(normalizeServer('https://ghcr.io/')).toBe('ghcr.io')
    expect(normalizeServer('127.0.0.1:5000')).toBe('127.0.0.1:5000')
  })
})
