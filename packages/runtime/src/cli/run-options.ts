/**
 * `ctr run`'s flags (Docker's names) and their translation into `create()` options. Values
 * are checked here first so that an error names the flag as the user typed it; the runtime's
 * own validation (zod) backs that up, and its field names are mapped back to flags.
 */
import { existsSync, promises as fs, statSync } from 'node:fs'
import path from 'node:path'
import { RLIMITS } from '@ctr/namespaces'
import { parseSize } from '../options/units.js'
import { parsePublish, type PublishedPort } from '../network/proxy.js'
import type { z } from 'zod'
import type { createSchema } from '../options/schema.js'
import { bool, intFlag, list, numberFlag, str, UsageError, type CommandSpec, type FlagValues } from './args.js'
import type { CliMeta } from './container-view.js'

export const RUN_SPEC: CommandSpec = {
  name: 'run',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  summary: 'Create and run a new container from an image',
  stopAtPositional: true,
  minArgs: 1,
  flags: [
    { name: 'detach', short: 'd', type: 'boolean', description: 'Run in the background (watched by a monitor process) and print the container ID' },
    { name: 'interactive', short: 'i', type: 'boolean', description: 'Keep STDIN open and connect it to the container' },
    { name: 'tty', short: 't', type: 'boolean', description: 'Allocate a pseudo-TTY (with -i: the terminal goes raw, its size follows yours)' },
    { name: 'rm', type: 'boolean', description: 'Remove the container when it exits' },
    { name: 'name', type: 'string', value: 'string', description: 'Assign a name to the container' },
    { name: 'env', short: 'e', type: 'string', multiple: true, value: 'list', description: 'Set environment variables (KEY=value, or KEY to copy it from here)' },
    { name: 'env-file', type: 'string', multiple: true, value: 'list', description: 'Read environment variables from a file (KEY=value lines, # comments)' },
    { name: 'volume', short: 'v', type: 'string', multiple: true, value: 'list', description: 'Bind mount /host:/ctr[:ro], or named volume name:/ctr[:ro]' },
    { name: 'tmpfs', type: 'string', multiple: true, value: 'list', description: 'Mount a tmpfs: /path[:size=64m,mode=1777]' },
    { name: 'memory', short: 'm', type: 'string', value: 'bytes', description: 'Memory limit (64m, 1g, bytes)' },
    { name: 'memory-swap', type: 'string', value: 'bytes', description: 'Memory plus swap limit; -1 for unlimited swap' },
    { name: 'cpus', type: 'string', value: 'decimal', description: 'Number of CPUs (a CFS quota: 1.5 = 150 ms per 100 ms)' },
    { name: 'pids-limit', type: 'string', value: 'int', description: 'Maximum number of processes (-1 or 0: unlimited)' },
    { name: 'blkio-weight', type: 'string', value: 'uint16', description: 'Block IO weight, 10 to 1000 (scaled to the io controller’s 1–10000)' },
    { name: 'ulimit', type: 'string', multiple: true, value: 'ulimit', description: 'Resource limit: name=soft[:hard], e.g. nofile=1024:2048' },
    { name: 'network', type: 'string', value: 'network', description: 'none (default: own namespace with lo up), host, bridge (the default network) or a network’s name' },
    { name: 'net', type: 'string', value: 'network', description: 'Alias of --network' },
    { name: 'publish', short: 'p', type: 'string', multiple: true, value: 'list', description: 'Publish a port on the host: [ip:]hostPort:containerPort[/tcp|udp], an IPv6 ip in brackets; without ip on every IPv4 and IPv6 address (needs a bridge network)' },
    { name: 'dns', type: 'string', multiple: true, value: 'list', description: 'Name server for the container’s /etc/resolv.conf (bridge networks)' },
    { name: 'read-only', type: 'boolean', description: 'Mount the container’s root filesystem read-only' },
    { name: 'user', short: 'u', type: 'string', value: 'string', description: 'Username or UID (format: <name|uid>[:<group|gid>])' },
    { name: 'workdir', short: 'w', type: 'string', value: 'string', description: 'Working directory inside the container' },
    { name: 'hostname', short: 'h', type: 'string', value: 'string', description: 'Container host name' },
    { name: 'init', type: 'boolean', description: 'Run ctr-init as PID 1: forwards signals and reaps processes' },
    { name: 'entrypoint', type: 'string', value: 'string', description: 'Overwrite the image’s ENTRYPOINT ("" clears it)' },
    { name: 'cap-add', type: 'string', multiple: true, value: 'list', description: 'Add Linux capabilities (NET_ADMIN, ALL)' },
    { name: 'cap-drop', type: 'string', multiple: true, value: 'list', description: 'Drop Linux capabilities (MKNOD, ALL)' },
    { name: 'privileged', type: 'boolean', description: 'Every capability, no seccomp, no masked paths' },
    { name: 'security-opt', type: 'string', multiple: true, value: 'list', description: 'seccomp=unconfined, seccomp=<profile.json>, no-new-privileges' },
    { name: 'pull', type: 'string', value: 'string', description: 'Pull image before running: missing (default), always, never' },
    { name: 'platform', type: 'string', value: 'string', description: 'Platform of the image, os/arch[/variant]' },
    { name: 'label', short: 'l', type: 'string', multiple: true, value: 'list', description: 'Set metadata on the container (key=value)' },
    { name: 'cgroup-parent', type: 'string', value: 'string', description: 'Cgroup (below ctr’s own) to create the container’s cgroup in (default ctr)' },
  ],
  more: `Examples:
  ctr run --rm busybox echo hello
  ctr run -it --rm -m 64m --pids-limit 64 busybox sh
  ctr run -d --name web -v /srv/www:/www:ro busybox httpd -f -h /www
  ctr run -d --network app -p 8080:80 --name web busybox httpd -f -h /www
  ctr run --rm oci:/path/to/layout:busybox:latest ls /`,
}

/**
 * What `create()` takes. (`CreateOptions` of runtime.ts is `Parameters<typeof
 * createSchema.parse>[0]`, which is `unknown`: the zod input type is the useful one.)
 */
export type CreateInput = z.input<typeof createSchema>

export interface RunPlan {
  image: string
  create: CreateInput
  meta: CliMeta
  detach: boolean
  remove: boolean
  interactive: boolean
  tty: boolean
  pull: 'missing' | 'always' | 'never'
  cgroupParent?: string
}

const CMD = 'run'

function fail(flag: string, value: string, why: string): never {
  throw new UsageError(`invalid argument "${value}" for "${flag}" flag: ${why}`, CMD)
}

/** `KEY=value` lines of an env file (Docker's format: no quotes processing, `KEY` alone copies ours). */
async function readEnvFile(file: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`--env-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, CMD)
  }
  const out: string[] = []
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/^\s+/, '')
    if (line === '' || line.startsWith('#')) continue
    out.push(envEntry(line, env, `--env-file ${file}:${i + 1}`))
  }
  return out
}

function envEntry(e: string, env: NodeJS.ProcessEnv, flag: string): string {
  const eq = e.indexOf('=')
  const key = eq < 0 ? e : e.slice(0, eq)
  if (key === '' || /\s/.test(key) || key.includes('\0')) fail(flag, e, 'KEY=value with a non-empty KEY without spaces')
  if (eq >= 0) return e
  return env[key] === undefined ? '' : `${key}=${env[key]}`
}

type Mount = NonNullable<CreateInput['mounts']>[number]

/** `-v /host:/ctr[:ro]` (bind; the host directory is created if missing, as Docker does) or `-v name:/ctr[:ro]`. */
function parseVolume(v: string, cwd: string): { mount: Mount; createSource?: string } {
  const parts = v.split(':')
  if (parts.length < 2 || parts.length > 3) fail('-v, --volume', v, 'SOURCE:TARGET[:ro|rw] (anonymous volumes are not supported)')
  const [source = '', target = '', mode = 'rw'] = parts
  const opts = mode.split(',')
  if (opts.some((o) => !['ro', 'rw', 'z', 'Z'].includes(o))) fail('-v, --volume', v, `unknown mode "${mode}" (ro or rw)`)
  const readonly = opts.includes('ro')
  if (!target.startsWith('/')) fail('-v, --volume', v, `the container path "${target}" must be absolute`)
  if (source.startsWith('/') || source.startsWith('.')) {
    const abs = path.resolve(cwd, source)
    return { mount: { type: 'bind', source: abs, target, ...(readonly ? { readonly: true } : {}) }, ...(existsSync(abs) ? {} : { createSource: abs }) }
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(source)) fail('-v, --volume', v, `"${source}" is neither an absolute host path nor a volume name`)
  return { mount: { type: 'volume', name: source, target, ...(readonly ? { readonly: true } : {}) } }
}

/** `--tmpfs /path[:size=64m,mode=1777]`. */
function parseTmpfs(v: string): Mount {
  const colon = v.indexOf(':')
  const target = colon < 0 ? v : v.slice(0, colon)
  if (!target.startsWith('/')) fail('--tmpfs', v, 'the path must be absolute')
  let size: string | undefined
  let mode: number | undefined
  for (const o of colon < 0 ? [] : v.slice(colon + 1).split(',').filter(Boolean)) {
    const [k, val = ''] = o.split('=')
    if (k === 'size') {
      if (parseSize(val) === undefined) fail('--tmpfs', v, `size "${val}" is not a size like 64m`)
      size = val
    } else if (k === 'mode') {
      if (!/^[0-7]{3,4}$/.test(val)) fail('--tmpfs', v, `mode "${val}" is not octal`)
      mode = Number.parseInt(val, 8)
    } else if (!['rw', 'noexec', 'nosuid', 'nodev', 'exec', 'suid', 'dev'].includes(k ?? '')) {
      fail('--tmpfs', v, `unsupported option "${o}" (size=, mode=)`)
    }
  }
  return { type: 'tmpfs', target, ...(size !== undefined ? { size } : {}), ...(mode !== undefined ? { mode } : {}) }
}

function parseUlimit(v: string): [string, { soft: number; hard: number }] {
  const m = /^([a-z_]+)=(-?\d+)(?::(-?\d+))?$/.exec(v.trim())
  if (!m) fail('--ulimit', v, 'name=soft[:hard]')
  const name = m[1]!
  if (!(RLIMITS as readonly string[]).includes(name)) fail('--ulimit', v, `unknown limit "${name}" (${RLIMITS.join(', ')})`)
  const soft = Number(m[2])
  const hard = m[3] === undefined ? soft : Number(m[3])
  if (soft < 0 || hard < 0 || soft > hard) fail('--ulimit', v, 'soft and hard are non-negative, soft ≤ hard')
  return [name, { soft, hard }]
}

function parseLabels(values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const l of values) {
    const eq = l.indexOf('=')
    const k = eq < 0 ? l : l.slice(0, eq)
    if (!k) fail('-l, --label', l, 'key=value')
    out[k] = eq < 0 ? '' : l.slice(eq + 1)
  }
  return out
}

/** Turns run's flags and positionals into what `create()` takes, plus ctr's own settings. */
export async function planRun(v: FlagValues, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<RunPlan> {
  const [image, ...cmd] = args
  if (!image) throw new UsageError('"ctr run" requires at least 1 argument', CMD)
  const detach = bool(v, 'detach')
  const remove = bool(v, 'rm')
  const tty = bool(v, 'tty')
  const interactive = bool(v, 'interactive') && !detach

  const envList = [...(await Promise.all(list(v, 'env-file').map((f) => readEnvFile(f, env)))).flat(), ...list(v, 'env').map((e) => envEntry(e, env, '-e, --env'))].filter(Boolean)

  const mounts: Mount[] = []
  for (const x of list(v, 'volume')) {
    const { mount, createSource } = parseVolume(x, cwd)
    if (createSource) await fs.mkdir(createSource, { recursive: true })
    else if (mount.type === 'bind' && !statSync(mount.source).isDirectory() && !statSync(mount.source).isFile()) fail('-v, --volume', x, 'the host path is neither a file nor a directory')
    mounts.push(mount)
  }
  for (const x of list(v, 'tmpfs')) mounts.push(parseTmpfs(x))

  const memory = str(v, 'memory')
  if (memory !== undefined && parseSize(memory) === undefined) fail('-m, --memory', memory, 'a size like 64m, 1g or a number of bytes')
  const swap = str(v, 'memory-swap')
  if (swap !== undefined && swap !== '-1' && parseSize(swap) === undefined) fail('--memory-swap', swap, 'a size like 128m, or -1')
  if (swap !== undefined && memory === undefined) throw new UsageError('--memory-swap needs --memory (swap is memory plus swap)', CMD)
  if (swap !== undefined && swap !== '-1' && parseSize(swap)! < parseSize(memory!)!) throw new UsageError('--memory-swap must be at least --memory', CMD)
  const cpus = numberFlag(v, 'cpus', CMD, { positive: true })
  const pidsLimit = intFlag(v, 'pids-limit', CMD)
  const blkio = intFlag(v, 'blkio-weight', CMD, { min: 0 })
  if (blkio !== undefined && blkio !== 0 && (blkio < 10 || blkio > 1000)) fail('--blkio-weight', String(blkio), 'a weight from 10 to 1000')

  const network = str(v, 'network') ?? str(v, 'net')
  if (network !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(network)) {
    fail('--network', network, '"none", "host", "bridge" or a network name')
  }
  const publishSpecs = list(v, 'publish')
  const publish: PublishedPort[] = []
  for (const x of publishSpecs) {
    try {
      publish.push(parsePublish(x))
    } catch (err) {
      fail('-p, --publish', x, (err as Error).message.replace(/^publish: /, ''))
    }
  }
  if (publish.length && (network === undefined || network === 'none' || network === 'host')) {
    throw new UsageError(`-p, --publish needs a bridge network (--network bridge or a network's name), not ${network === undefined ? 'the default "none"' : `"${network}"`}`, CMD)
  }
  const dns = list(v, 'dns')
  for (const d of dns) if (!/^\d{1,3}(\.\d{1,3}){3}$|^[0-9a-fA-F:]+$/.test(d)) fail('--dns', d, 'an IP address')
  if (dns.length && (network === undefined || network === 'none' || network === 'host')) {
    throw new UsageError(`--dns needs a bridge network (--network bridge or a network's name)`, CMD)
  }
  const pull = str(v, 'pull') ?? 'missing'
  if (pull !== 'missing' && pull !== 'always' && pull !== 'never') fail('--pull', pull, 'missing, always or never')

  let seccomp: 'default' | 'unconfined' | Record<string, unknown> | undefined
  for (const o of list(v, 'security-opt')) {
    const [k, val] = o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : o.includes(':') ? [o.slice(0, o.indexOf(':')), o.slice(o.indexOf(':') + 1)] : [o, '']
    if (k === 'seccomp') {
      if (val === 'unconfined') seccomp = 'unconfined'
      else if (val === '' ) fail('--security-opt', o, 'seccomp=unconfined or seccomp=<profile.json>')
      else {
        try {
          seccomp = JSON.parse(await fs.readFile(path.resolve(cwd, val), 'utf8')) as Record<string, unknown>
        } catch (err) {
          fail('--security-opt', o, `cannot read the seccomp profile: ${(err as Error).message}`)
        }
        if (seccomp === null || typeof seccomp !== 'object' || Array.isArray(seccomp)) fail('--security-opt', o, 'the seccomp profile is not a JSON object')
      }
    } else if (k === 'no-new-privileges') {
      if (val !== '' && val !== 'true') fail('--security-opt', o, 'no-new-privileges is always on (except with --privileged)')
    } else {
      fail('--security-opt', o, 'supported: seccomp=unconfined, seccomp=<file.json>, no-new-privileges')
    }
  }

  const ulimits: Record<string, { soft: number; hard: number }> = {}
  for (const u of list(v, 'ulimit')) {
    const [k, l] = parseUlimit(u)
    ulimits[k] = l
  }
  const entrypoint = str(v, 'entrypoint')
  const capAdd = list(v, 'cap-add').flatMap((c) => c.split(',')).filter(Boolean)
  const capDrop = list(v, 'cap-drop').flatMap((c) => c.split(',')).filter(Boolean)
  const privileged = bool(v, 'privileged')
  const labels = parseLabels(list(v, 'label'))
  const cgroupParent = str(v, 'cgroup-parent')
  const name = str(v, 'name')
  const user = str(v, 'user')
  const workdir = str(v, 'workdir')
  const hostname = str(v, 'hostname')
  const platform = str(v, 'platform')

  const create: RunPlan['create'] = {
    image,
    pull,
    ...(platform ? { platform } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(cmd.length ? { cmd } : {}),
    ...(entrypoint !== undefined ? { entrypoint: entrypoint === '' ? [] : [entrypoint] } : {}),
    ...(envList.length ? { env: envList } : {}),
    ...(workdir !== undefined ? { workdir } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(hostname !== undefined ? { hostname } : {}),
    ...(memory !== undefined ? { memory } : {}),
    ...(swap !== undefined ? { memorySwap: swap === '-1' ? -1 : swap } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    ...(pidsLimit !== undefined && pidsLimit > 0 ? { pids: pidsLimit } : {}),
    ...(blkio ? { ioWeight: Math.round(1 + ((blkio - 10) * 9999) / 990) } : {}),
    ...(mounts.length ? { mounts } : {}),
    ...(bool(v, 'read-only') ? { readonly: true } : {}),
    ...(network ? { network } : {}),
    ...(publish.length ? { publish } : {}),
    ...(dns.length ? { dns } : {}),
    ...(tty ? { tty: true } : {}),
    ...(bool(v, 'init') ? { init: true } : {}),
    ...(capAdd.length ? { capAdd } : {}),
    ...(capDrop.length ? { capDrop } : {}),
    ...(privileged ? { privileged: true } : {}),
    ...(seccomp !== undefined ? { seccomp } : {}),
    ...(Object.keys(labels).length ? { labels } : {}),
    ...(Object.keys(ulimits).length ? { ulimits } : {}),
    // Not `interactive: true`: stdin is given to start() instead. (The runtime writes
    // `interactive` into state.config, which its strict state schema then refuses to read.)
  }
  const meta: CliMeta = {
    version: 1,
    autoRemove: remove,
    detached: detach,
    security: { ...(capAdd.length ? { capAdd } : {}), ...(capDrop.length ? { capDrop } : {}), ...(privileged ? { privileged } : {}), ...(seccomp !== undefined ? { seccomp } : {}) },
    ...(Object.keys(ulimits).length ? { ulimits } : {}),
    host: {
      AutoRemove: remove,
      NetworkMode: network ?? 'none',
      PortBindings: Object.fromEntries(publish.map((p) => [`${p.containerPort}/${p.protocol}`, [{ HostIp: p.hostIp ?? '', HostPort: String(p.hostPort) }]])),
      Dns: dns,
      Privileged: privileged,
      ReadonlyRootfs: bool(v, 'read-only'),
      Init: bool(v, 'init'),
      Memory: memory !== undefined ? parseSize(memory) : 0,
      MemorySwap: swap === undefined ? 0 : swap === '-1' ? -1 : parseSize(swap),
      NanoCpus: cpus !== undefined ? Math.round(cpus * 1e9) : 0,
      PidsLimit: pidsLimit !== undefined && pidsLimit > 0 ? pidsLimit : null,
      BlkioWeight: blkio ?? 0,
      CapAdd: capAdd,
      CapDrop: capDrop,
      SecurityOpt: list(v, 'security-opt'),
      Ulimits: ulimits,
      Mounts: mounts,
      CgroupParent: cgroupParent ?? 'ctr',
    },
  }
  return { image, create, meta, detach, remove, interactive, tty, pull, ...(cgroupParent ? { cgroupParent } : {}) }
}

/** The flag a `create()` option comes from, to name it in errors. */
const FIELD_FLAGS: Record<string, string> = {
  image: 'IMAGE',
  pull: '--pull',
  platform: '--platform',
  name: '--name',
  cmd: 'COMMAND',
  entrypoint: '--entrypoint',
  env: '-e, --env',
  workdir: '-w, --workdir',
  user: '-u, --user',
  hostname: '-h, --hostname',
  memory: '-m, --memory',
  memorySwap: '--memory-swap',
  cpus: '--cpus',
  pids: '--pids-limit',
  ioWeight: '--blkio-weight',
  mounts: '-v, --volume / --tmpfs',
  network: '--network',
  publish: '-p, --publish',
  dns: '--dns',
  capAdd: '--cap-add',
  capDrop: '--cap-drop',
  seccomp: '--security-opt seccomp',
  labels: '-l, --label',
  ulimits: '--ulimit',
  init: '--init',
}

/** A runtime validation error, reworded to name the flag. */
export function flagError(err: unknown): unknown {
  // Duck-typed: a detached container's monitor reports the runtime's error as a plain Error
  // with its code and field.
  const e = err as { code?: unknown; field?: unknown; message?: string; exitCode?: unknown }
  if (!(err instanceof Error) || e.code !== 'ERR_RUNTIME_INVALID_OPTIONS' || typeof e.field !== 'string' || !e.field) return err
  const top = e.field.split('.')[0]!
  const flag = FIELD_FLAGS[top]
  if (!flag) return err
  return new UsageError(`${flag}: ${err.message}`, CMD)
}
