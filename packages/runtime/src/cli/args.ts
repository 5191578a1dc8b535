/**
 * Command-line parsing for `ctr`, on top of `node:util` `parseArgs` (no CLI library: the
 * grammar is Docker's, which parseArgs covers — long and short flags, `--flag=value`, grouped
 * short booleans such as `-it`, repeatable flags — and a dependency would buy only help
 * formatting). What parseArgs lacks is added here:
 *
 * - `run` and `exec` stop at the first positional (`ctr run IMAGE ls -l`: `-l` belongs to
 *   `ls`), as Docker's do: a lenient pass finds where the positional starts, then a strict pass
 *   parses only the flags before it;
 * - `--flag=false` / `--flag=true` for booleans, as Docker (pflag) accepts;
 * - errors that name the flag (`unknown flag: --foo`), and generated `--help` text.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'

/** One flag of a command. */
export interface FlagSpec {
  /** Long name, without `--`. */
  name: string
  /** One-letter short name, without `-`. */
  short?: string
  type: 'boolean' | 'string'
  /** May be given several times (values collected in order). */
  multiple?: boolean
  /** Placeholder in help (`bytes`, `list`, `string`). */
  value?: string
  /** Default for booleans that are on unless negated (`--pause=false`). */
  defaultTrue?: boolean
  description: string
}

/** A command: its flags and how many positionals it takes. */
export interface CommandSpec {
  name: string
  /** What follows `ctr <name>` in the usage line: `[OPTIONS] IMAGE [COMMAND] [ARG...]`. */
  usage: string
  summary: string
  flags: FlagSpec[]
  /** Flags end at the first positional (`run`, `exec`). */
  stopAtPositional?: boolean
  minArgs?: number
  maxArgs?: number
  /** Extra help text (examples). */
  more?: string
}

/** A usage error: bad flags or arguments. Exit status 125, like Docker's. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly code = 'ERR_CTR_USAGE'
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message)
  }
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>

export interface Parsed {
  values: FlagValues
  args: string[]
  help: boolean
}

const HELP: FlagSpec = { name: 'help', type: 'boolean', description: 'Print usage' }

function toConfig(flags: FlagSpec[]): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {}
  for (const f of flags) {
    options[f.name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) }
  }
  return options
}

function flagLabel(f: FlagSpec): string {
  return f.short ? `-${f.short}, --${f.name}` : `--${f.name}`
}

/** `--rm=false` → negated, `--rm=true` → `--rm`, `--flag -1` → `--flag=-1`; other arguments untouched. */
function booleanValues(argv: string[], flags: FlagSpec[]): { argv: string[]; negated: Set<string> } {
  const booleans = new Set(flags.filter((f) => f.type === 'boolean').map((f) => f.name))
  const strings = new Map<string, string>()
  for (const f of flags.filter((x) => x.type === 'string')) {
    strings.set(`--${f.name}`, f.name)
    if (f.short) strings.set(`-${f.short}`, f.name)
  }
  const negated = new Set<string>()
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') {
      out.push(...argv.slice(i))
      break
    }
    // `--memory-swap -1`: a negative number is the flag's value (pflag's reading), which
    // parseArgs would take for a flag.
    const next = argv[i + 1]
    if (strings.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(`--${strings.get(a)}=${next}`)
      i++
      continue
    }
    const m = /^--([A-Za-z0-9][A-Za-z0-9-]*)=(true|false)$/.exec(a)
    if (m && booleans.has(m[1]!)) {
      if (m[2] === 'true') out.push(`--${m[1]}`)
      else negated.add(m[1]!)
      continue
    }
    out.push(a)
  }
  return { argv: out, negated }
}

/** Rewrites parseArgs' messages as Docker's (naming the flag). */
function usageError(err: unknown, flags: FlagSpec[], command: string): UsageError {
  const e = err as { code?: string; message: string }
  const m = /'([^']+)'/.exec(e.message)
  const what = m?.[1]?.replace(/ <value>$/, '') ?? ''
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    // "-x" unknown in a group like "-ix" is reported as "-x"; a short unknown flag keeps its dash.
    return new UsageError(`unknown ${what.startsWith('--') ? 'flag' : 'shorthand flag'}: ${what}`, command)
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/argument missing|ambiguous/.test(e.message)) {
      const f = flags.find((x) => flagLabel(x) === what || `--${x.name}` === what)
      const hint = /ambiguous/.test(e.message) ? ` (a value starting with "-" must be written ${f ? `--${f.name}` : what}=VALUE)` : ''
      return new UsageError(`flag needs an argument: ${what}${hint}`, command)
    }
    if (/does not take an argument/.test(e.message)) return new UsageError(`flag ${what} does not take a value`, command)
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return new UsageError(`unexpected argument: ${what}`, command)
  return new UsageError(e.message, command)
}

/** Parses a command's arguments (everything after the command name). */
export function parseCommand(spec: CommandSpec, argvIn: string[]): Parsed {
  const flags = [...spec.flags, HELP]
  const options = toConfig(flags)
  let head = argvIn
  let tail: string[] = []
  if (spec.stopAtPositional) {
    const { tokens } = parseArgs({ args: argvIn, options, strict: false, allowPositionals: true, tokens: true })
    const first = tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator')
    if (first) {
      head = argvIn.slice(0, first.index)
      tail = argvIn.slice(first.kind === 'option-terminator' ? first.index + 1 : first.index)
    }
  }
  const { argv, negated } = booleanValues(head, flags)
  let values: FlagValues
  let positionals: string[]
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: !spec.stopAtPositional })
    values = r.values as FlagValues
    positionals = r.positionals
  } catch (err) {
    throw usageError(err, flags, spec.name)
  }
  for (const f of flags) {
    if (negated.has(f.name)) values[f.name] = false
    else if (f.defaultTrue && values[f.name] === undefined) values[f.name] = true
  }
  const args = [...positionals, ...tail]
  const help = values['help'] === true
  if (!help) {
    if (spec.minArgs !== undefined && args.length < spec.minArgs) {
      throw new UsageError(`"ctr ${spec.name}" requires ${spec.maxArgs === spec.minArgs ? 'exactly' : 'at least'} ${spec.minArgs} argument${spec.minArgs === 1 ? '' : 's'}`, spec.name)
    }
    if (spec.maxArgs !== undefined && args.length > spec.maxArgs) {
      throw new UsageError(`"ctr ${spec.name}" accepts at most ${spec.maxArgs} argument${spec.maxArgs === 1 ? '' : 's'}, got ${args.length}`, spec.name)
    }
  }
  return { values, args, help }
}

/** The `--help` text of a command. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage:  ctr ${spec.name} ${spec.usage}`, '', spec.summary, '']
  const flags = [...spec.flags, HELP]
  if (flags.length) {
    lines.push('Options:')
    const labels = flags.map((f) => {
      const l = f.short ? `-${f.short}, --${f.name}` : `    --${f.name}`
      return f.type === 'string' ? `${l} ${f.value ?? (f.multiple ? 'list' : 'string')}` : l
    })
    const width = Math.max(...labels.map((l) => l.length))
    for (const [i, f] of flags.entries()) lines.push(`  ${labels[i]!.padEnd(width)}   ${f.description}`)
  }
  if (spec.more) lines.push('', spec.more.trimEnd())
  return lines.join('\n') + '\n'
}

/** Typed accessors for parsed values. */
export function str(v: FlagValues, name: string): string | undefined {
  const x = v[name]
  return typeof x === 'string' ? x : undefined
}
export function list(v: FlagValues, name: string): string[] {
  const x = v[name]
  return Array.isArray(x) ? x : typeof x === 'string' ? [x] : []
}
export function bool(v: FlagValues, name: string): boolean {
  return v[name] === true
}

/** A flag's integer value, or a usage error naming the flag. */
export function intFlag(v: FlagValues, name: string, command: string, o: { min?: number; label?: string } = {}): number | undefined {
  const s = str(v, name)
  if (s === undefined) return undefined
  const n = Number(s)
  if (!/^-?\d+$/.test(s.trim()) || !Number.isSafeInteger(n) || (o.min !== undefined && n < o.min)) {
    throw new UsageError(`invalid argument "${s}" for "${o.label ?? `--${name}`}" flag: ${o.min !== undefined ? `an integer ≥ ${o.min}` : 'an integer'}`, command)
  }
  return n
}

/** A flag's decimal value, or a usage error naming the flag. */
export function numberFlag(v: FlagValues, name: string, command: string, o: { positive?: boolean; label?: string } = {}): number | undefined {
  const s = str(v, name)
  if (s === undefined) return undefined
  const n = Number(s)
  if (s.trim() === '' || !Number.isFinite(n) || (o.positive && n <= 0)) {
    throw new UsageError(`invalid argument "${s}" for "${o.label ?? `--${name}`}" flag: ${o.positive ? 'a positive number' : 'a number'}`, command)
  }
  return n
}
