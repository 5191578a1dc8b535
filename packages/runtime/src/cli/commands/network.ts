/**
 * `ctr network create|ls|rm|inspect`: user-defined bridge networks (see ../../network/). The
 * bridge, its NAT rules and the port proxies live in the runtime's host netns (`--host-netns`,
 * `$CTR_HOST_NETNS`, default ours), which a network records when it is created.
 */
import { Network } from '../../network/network.js'
import { RuntimeError } from '../../errors.js'
import { bool, commandHelp, list, parseCommand, str, UsageError, type CommandSpec, type Parsed } from '../args.js'
import type { Context } from '../context.js'
import { eachArg } from '../errors.js'
import { table } from '../format.js'

export const NETWORK_CREATE_SPEC: CommandSpec = {
  name: 'network create',
  usage: '[OPTIONS] NETWORK',
  summary: 'Create a bridge network (a bridge ctr-NAME with its own subnet and outbound NAT)',
  minArgs: 1,
  maxArgs: 1,
  flags: [
    { name: 'subnet', type: 'string', value: 'cidr', description: 'IPv4 subnet (default the first free /24 of 10.89.0.0/16)' },
    { name: 'gateway', type: 'string', value: 'ip', description: 'The bridge’s address (default the subnet’s first)' },
    { name: 'ipv6', type: 'boolean', description: 'IPv6 too: each container also gets an address of --subnet6' },
    { name: 'subnet6', type: 'string', value: 'cidr', description: 'IPv6 subnet, /48 to /120 (implies --ipv6; default fd10:<the IPv4 subnet’s 32 bits>::/64)' },
    { name: 'dns', type: 'string', multiple: true, value: 'list', description: 'Name servers of the containers on it (default the host’s)' },
    { name: 'driver', short: 'd', type: 'string', value: 'string', description: 'Only "bridge"' },
  ],
}

export const NETWORK_LS_SPEC: CommandSpec = {
  name: 'network ls',
  usage: '[OPTIONS]',
  summary: 'List networks',
  maxArgs: 0,
  flags: [
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Only display network names' },
    { name: 'format', type: 'string', value: 'string', description: 'json: one JSON object per network' },
  ],
}

export const NETWORK_RM_SPEC: CommandSpec = {
  name: 'network rm',
  usage: 'NETWORK [NETWORK...]',
  summary: 'Remove networks (refused while a container is on one)',
  minArgs: 1,
  flags: [],
}

export const NETWORK_INSPECT_SPEC: CommandSpec = {
  name: 'network inspect',
  usage: 'NETWORK [NETWORK...]',
  summary: 'Display networks as JSON (subnet, gateway, bridge, containers)',
  minArgs: 1,
  flags: [],
}

const SUBCOMMANDS: Record<string, { spec: CommandSpec; run: (ctx: Context, p: Parsed) => Promise<number> }> = {
  create: { spec: NETWORK_CREATE_SPEC, run: create },
  ls: { spec: NETWORK_LS_SPEC, run: ls },
  rm: { spec: NETWORK_RM_SPEC, run: rm },
  inspect: { spec: NETWORK_INSPECT_SPEC, run: inspect },
}
const ALIASES: Record<string, string> = { list: 'ls', remove: 'rm' }

export const NETWORK_SPEC: CommandSpec = {
  name: 'network',
  usage: 'COMMAND',
  summary: 'Manage bridge networks',
  stopAtPositional: true,
  flags: [],
  more: `Commands:
  create    ${NETWORK_CREATE_SPEC.summary}
  inspect   ${NETWORK_INSPECT_SPEC.summary}
  ls        ${NETWORK_LS_SPEC.summary}
  rm        ${NETWORK_RM_SPEC.summary}

Examples:
  ctr network create --subnet 10.90.0.0/24 app
  ctr run -d --network app --name web busybox httpd -f -p 8080
  ctr run --rm --network app busybox wget -qO- http://web:8080/
  ctr run -d --network app -p 8080:8080 busybox httpd -f -p 8080

Run 'ctr network COMMAND --help' for more information on a command.`,
}

export async function network(ctx: Context, p: Parsed): Promise<number> {
  const [name, ...rest] = p.args
  if (name === undefined) {
    process.stdout.write(commandHelp(NETWORK_SPEC))
    return 0
  }
  const sub = SUBCOMMANDS[ALIASES[name] ?? name]
  if (!sub) throw new UsageError(`'${name}' is not a ctr network command`, 'network')
  const parsed = parseCommand(sub.spec, rest)
  if (parsed.help) {
    process.stdout.write(commandHelp(sub.spec))
    return 0
  }
  return sub.run(ctx, parsed)
}

/** A network as `network inspect` and `network ls --format json` print it (Docker's field names where they exist). */
async function view(n: Network): Promise<Record<string, unknown>> {
  const containers = await n.containers()
  return {
    Name: n.name,
    Driver: 'bridge',
    Bridge: n.bridge,
    Subnet: n.subnet,
    Gateway: n.gateway,
    EnableIPv6: n.subnet6 !== undefined,
    ...(n.hostNetns !== undefined ? { HostNetns: n.hostNetns } : {}),
    IPAM: { Driver: 'default', Config: [{ Subnet: n.subnet, Gateway: n.gateway }, ...(n.subnet6 ? [{ Subnet: n.subnet6, Gateway: n.gateway6 }] : [])] },
    Containers: Object.fromEntries(containers.map((c) => [c.id, { Name: c.name, IPv4Address: c.ip, ...(c.ip6 ? { IPv6Address: c.ip6 } : {}) }])),
  }
}

async function create(ctx: Context, p: Parsed): Promise<number> {
  const driver = str(p.values, 'driver')
  if (driver !== undefined && driver !== 'bridge') throw new UsageError(`invalid argument "${driver}" for "-d, --driver" flag: only "bridge"`, 'network create')
  const name = p.args[0]!
  const subnet = str(p.values, 'subnet')
  const gateway = str(p.values, 'gateway')
  const subnet6 = str(p.values, 'subnet6')
  const ipv6 = bool(p.values, 'ipv6') || subnet6 !== undefined
  const dns = list(p.values, 'dns')
  for (const d of dns) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$|^[0-9a-fA-F:]+$/.test(d)) throw new UsageError(`invalid argument "${d}" for "--dns" flag: an IP address`, 'network create')
  }
  const rt = await ctx.runtime()
  let net: Network
  try {
    net = await Network.create({ name, runtime: rt, ...(subnet !== undefined ? { subnet } : {}), ...(gateway !== undefined ? { gateway } : {}), ...(ipv6 ? { ipv6 } : {}), ...(subnet6 !== undefined ? { subnet6 } : {}), ...(dns.length ? { dns } : {}) })
  } catch (err) {
    if (err instanceof RuntimeError && err.code === 'ERR_RUNTIME_INVALID_OPTIONS' && err.field) {
      const flag = err.field === 'subnet' ? '--subnet' : err.field === 'gateway' ? '--gateway' : err.field === 'subnet6' ? '--subnet6' : 'NETWORK'
      throw new UsageError(`${flag}: ${err.message}`, 'network create')
    }
    throw err
  }
  process.stdout.write(`${net.name}\n`)
  return 0
}

async function ls(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const nets = (await Network.list({ runtime: rt })).sort((a, b) => a.name.localeCompare(b.name))
  if (bool(p.values, 'quiet')) {
    process.stdout.write(nets.map((n) => `${n.name}\n`).join(''))
    return 0
  }
  const format = str(p.values, 'format')
  if (format !== undefined) {
    if (format !== 'json') throw new UsageError(`invalid argument "${format}" for "--format" flag: json`, 'network ls')
    for (const n of nets) process.stdout.write(`${JSON.stringify(await view(n))}\n`)
    return 0
  }
  const rows: string[][] = []
  for (const n of nets) {
    const names = (await n.containers()).map((c) => c.name).sort()
    rows.push([n.name, n.subnet, n.gateway, n.bridge, names.join(',')])
  }
  process.stdout.write(table(['NAME', 'SUBNET', 'GATEWAY', 'BRIDGE', 'CONTAINERS'], rows))
  return 0
}

async function rm(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  return eachArg(p.args, async (name) => {
    await (await Network.get(name, { runtime: rt })).remove()
    process.stdout.write(`${name}\n`)
  })
}

async function inspect(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const out: unknown[] = []
  const status = await eachArg(p.args, async (name) => {
    out.push(await view(await Network.get(name, { runtime: rt })))
  })
  process.stdout.write(`${JSON.stringify(out, null, 4)}\n`)
  return status
}
