#!/usr/bin/env node
/**
 * `ctr`: containers from the command line, with Docker's command and flag names. No daemon:
 * each command opens the image store and the state directory, does its work and exits; a
 * detached container is watched by its own monitor process (see ../monitor/).
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { detect } from '@ctr/cgroups'
import { commandHelp, list, parseCommand, bool, str, UsageError, type CommandSpec, type Parsed } from './args.js'
import { Context, resolveGlobals } from './context.js'
import { EXIT_CTR, exitStatusOf } from './errors.js'
import * as ctrs from './commands/containers.js'
import * as imgs from './commands/images.js'
import * as nets from './commands/network.js'
import { run } from './commands/run.js'
import { RUN_SPEC } from './run-options.js'

interface Command {
  spec: CommandSpec
  run: (ctx: Context, p: Parsed) => Promise<number>
}

const GLOBAL_SPEC: CommandSpec = {
  name: '',
  usage: '[OPTIONS] COMMAND',
  summary: 'Linux containers for Node.js, without a daemon',
  stopAtPositional: true,
  flags: [
    { name: 'root', type: 'string', value: 'dir', description: 'Image store (default $CTR_ROOT or /var/lib/ctr)' },
    { name: 'state', type: 'string', value: 'dir', description: 'Container state (default $CTR_STATE_ROOT or /run/ctr)' },
    { name: 'host-netns', type: 'string', value: 'pid|path', description: 'Network namespace that plays the host for bridges, NAT and published ports (also $CTR_HOST_NETNS; default ours)' },
    { name: 'insecure-registry', type: 'string', multiple: true, value: 'host:port', description: 'Use plain HTTP for this registry (also $CTR_INSECURE_REGISTRIES, comma-separated)' },
    { name: 'debug', short: 'D', type: 'boolean', description: 'Print stacks and error codes' },
    { name: 'version', short: 'v', type: 'boolean', description: 'Print version information and quit' },
  ],
}

const VERSION_SPEC: CommandSpec = { name: 'version', usage: '', summary: 'Show version information', maxArgs: 0, flags: [] }

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

async function version(_ctx: Context, _p: Parsed): Promise<number> {
  let cgroups = 'unknown'
  try {
    cgroups = (await detect()).mode
  } catch {
    /* no cgroups mounted */
  }
  process.stdout.write(
    [
      `ctr version ${packageVersion()}`,
      ` Node.js:   ${process.version}`,
      ` OS/Arch:   ${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
      ` Kernel:    ${os.release()}`,
      ` Cgroups:   ${cgroups}`,
      '',
    ].join('\n'),
  )
  return 0
}

export const COMMANDS: Record<string, Command> = {
  run: { spec: RUN_SPEC, run },
  exec: { spec: ctrs.EXEC_SPEC, run: ctrs.exec },
  ps: { spec: ctrs.PS_SPEC, run: ctrs.ps },
  logs: { spec: ctrs.LOGS_SPEC, run: ctrs.logs },
  stop: { spec: ctrs.STOP_SPEC, run: ctrs.stop },
  kill: { spec: ctrs.KILL_SPEC, run: ctrs.kill },
  rm: { spec: ctrs.RM_SPEC, run: ctrs.rm },
  stats: { spec: ctrs.STATS_SPEC, run: ctrs.stats },
  inspect: { spec: ctrs.INSPECT_SPEC, run: ctrs.inspect },
  commit: { spec: ctrs.COMMIT_SPEC, run: ctrs.commit },
  prune: { spec: ctrs.PRUNE_SPEC, run: ctrs.prune },
  pull: { spec: imgs.PULL_SPEC, run: imgs.pull },
  push: { spec: imgs.PUSH_SPEC, run: imgs.push },
  images: { spec: imgs.IMAGES_SPEC, run: imgs.images },
  rmi: { spec: imgs.RMI_SPEC, run: imgs.rmi },
  tag: { spec: imgs.TAG_SPEC, run: imgs.tag },
  login: { spec: imgs.LOGIN_SPEC, run: imgs.login },
  logout: { spec: imgs.LOGOUT_SPEC, run: imgs.logout },
  network: { spec: nets.NETWORK_SPEC, run: nets.network },
  version: { spec: VERSION_SPEC, run: version },
}

const GROUPS: [string, string[]][] = [
  ['Containers', ['run', 'exec', 'ps', 'logs', 'stop', 'kill', 'rm', 'stats', 'inspect', 'commit', 'prune']],
  ['Images', ['pull', 'push', 'images', 'rmi', 'tag', 'login', 'logout']],
  ['Networks', ['network']],
  ['Other', ['version']],
]

function mainHelp(): string {
  const lines = [commandHelp(GLOBAL_SPEC).trimEnd().replace('Usage:  ctr  ', 'Usage:  ctr ')]
  for (const [title, names] of GROUPS) {
    lines.push('', `${title}:`)
    for (const n of names) lines.push(`  ${n.padEnd(10)}${COMMANDS[n]!.spec.summary}`)
  }
  lines.push('', "Run 'ctr COMMAND --help' for more information on a command.", '', 'Exit status: the container’s for run and exec; 125 when ctr itself fails; 126 when the command cannot be executed; 127 when it is not found.')
  return lines.join('\n') + '\n'
}

/** Runs `ctr` with these arguments; resolves with the exit status (never rejects). */
export async function main(argv: string[]): Promise<number> {
  let debug = argv.includes('--debug') || argv.includes('-D')
  let command: string | undefined
  try {
    const g = parseCommand(GLOBAL_SPEC, argv)
    debug = bool(g.values, 'debug')
    if (bool(g.values, 'version')) return await version(undefined as unknown as Context, g)
    const [name, ...rest] = g.args
    if (g.help || name === undefined || name === 'help') {
      if (name === 'help' && rest[0] && COMMANDS[rest[0]]) {
        process.stdout.write(commandHelp(COMMANDS[rest[0]]!.spec))
        return 0
      }
      process.stdout.write(mainHelp())
      return 0
    }
    const cmd = COMMANDS[name]
    if (!cmd) throw new UsageError(`'${name}' is not a ctr command`)
    command = name
    const parsed = parseCommand(cmd.spec, rest)
    if (parsed.help) {
      process.stdout.write(commandHelp(cmd.spec))
      return 0
    }
    const root = str(g.values, 'root')
    const state = str(g.values, 'state')
    const hostNetns = str(g.values, 'host-netns')
    const ctx = new Context(resolveGlobals({ ...(root ? { root } : {}), ...(state ? { state } : {}), ...(hostNetns ? { hostNetns } : {}), insecure: list(g.values, 'insecure-registry'), debug }))
    return await cmd.run(ctx, parsed)
  } catch (err) {
    const e = err as Error & { code?: unknown; field?: unknown; monitorStack?: unknown }
    process.stderr.write(`ctr: ${e?.message ?? String(err)}\n`)
    if (err instanceof UsageError) process.stderr.write(`See 'ctr ${err.command ?? command ?? ''}${err.command ?? command ? ' ' : ''}--help'.\n`)
    if (debug) {
      if (e?.code !== undefined) process.stderr.write(`code: ${String(e.code)}${e.field ? ` (field ${String(e.field)})` : ''}\n`)
      process.stderr.write(`${e?.stack ?? ''}\n`)
      for (let c = e?.cause as (Error & { code?: unknown }) | undefined, i = 0; c && i < 5; c = c.cause as typeof c, i++) {
        process.stderr.write(`caused by: ${c.code !== undefined ? `[${String(c.code)}] ` : ''}${c.stack ?? c.message ?? String(c)}\n`)
      }
      if (typeof e?.monitorStack === 'string') process.stderr.write(`in the monitor: ${e.monitorStack}\n`)
    }
    return exitStatusOf(err)
  }
}

/** Exits once stdout and stderr have flushed (a pipe may still hold output). */
function exit(code: number): void {
  let pending = 2
  const done = () => {
    if (--pending === 0) process.exit(code)
  }
  for (const s of [process.stdout, process.stderr]) {
    if (s.destroyed || !s.writable) done()
    else s.write('', done)
  }
  setTimeout(() => process.exit(code), 5000).unref()
}

main(process.argv.slice(2)).then(exit, (err: unknown) => {
  process.stderr.write(`ctr: ${(err as Error)?.stack ?? String(err)}\n`)
  exit(EXIT_CTR)
})
