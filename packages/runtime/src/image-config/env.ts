/**
 * A container's environment, merged as Docker does: its own defaults (PATH, HOSTNAME, TERM
 * with a tty), then the image's `Env`, then the user's, each replacing earlier values of the
 * same name; HOME from the user's passwd entry when still unset (runc).
 */
import { invalidOption } from '../errors.js'

/** Docker's default PATH on Linux (`oci.DefaultPathEnv`). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/**
 * The user's environment: a record (`null` removes a name) or Docker's list form (`'K=V'`
 * sets, a bare `'K'` removes the variable, as `ReplaceOrAppendEnvValues` does).
 */
export type EnvInput = Record<string, string | null> | readonly string[]

export interface MergeEnvOptions {
  /** The image config's `Env` (`NAME=value` entries; entries without `=` are ignored). */
  image?: readonly string[] | null
  /** The user's variables; they win over the image's. */
  user?: EnvInput
  /** HOSTNAME, as Docker sets it. */
  hostname?: string
  /** The resolved user's home directory, for HOME when neither the image nor the user set it. */
  home?: string
  /** TERM=xterm, as Docker sets it for `-t`. */
  tty?: boolean
  /** The option name in errors (default `env`). */
  field?: string
}

function checkName(name: string, field: string): void {
  if (name === '' || name.includes('=') || name.includes('\0')) throw invalidOption(field, `"${name}" is not a valid environment variable name`)
}

/**
 * Merges a container's environment. The result keeps Docker's order: PATH, HOSTNAME, TERM,
 * then the image's variables, then the user's new ones; a variable set again keeps its
 * place and takes the new value. PATH is Docker's default unless the image or the user
 * sets it; HOME is `home` unless set.
 *
 * @example
 * ```ts
 * import { mergeEnv } from '@ctr/runtime'
 * mergeEnv({ image: ['PATH=/opt/bin:/bin', 'LANG=C.UTF-8'], user: { LANG: 'de_DE.UTF-8', DEBUG: '1' }, hostname: 'box', home: '/root' })
 * // { PATH: '/opt/bin:/bin', HOSTNAME: 'box', LANG: 'de_DE.UTF-8', DEBUG: '1', HOME: '/root' }
 * ```
 */
export function mergeEnv(options: MergeEnvOptions = {}): Record<string, string> {
  const field = options.field ?? 'env'
  const env = new Map<string, string>()
  env.set('PATH', DEFAULT_PATH)
  if (options.hostname !== undefined) env.set('HOSTNAME', options.hostname)
  if (options.tty) env.set('TERM', 'xterm')

  for (const entry of options.image ?? []) {
    const eq = entry.indexOf('=')
    if (eq <= 0) continue
    env.set(entry.slice(0, eq), entry.slice(eq + 1))
  }

  const user = options.user
  if (Array.isArray(user)) {
    ;(user as readonly string[]).forEach((entry, i) => {
      if (typeof entry !== 'string') throw invalidOption(`${field}.${i}`, 'must be a string')
      const eq = entry.indexOf('=')
      const name = eq < 0 ? entry : entry.slice(0, eq)
      checkName(name, `${field}.${i}`)
      if (eq < 0) env.delete(name)
      else env.set(name, entry.slice(eq + 1))
    })
  } else if (user !== undefined) {
    for (const [name, value] of Object.entries(user as Record<string, string | null>)) {
      checkName(name, `${field}.${name}`)
      if (value === null) env.delete(name)
      else if (typeof value !== 'string') throw invalidOption(`${field}.${name}`, 'must be a string or null')
      else env.set(name, value)
    }
  }
  for (const [name, value] of env) if (value.includes('\0')) throw invalidOption(`${field}.${name}`, 'must not contain NUL bytes')

  if (!env.has('HOME') && options.home !== undefined) env.set('HOME', options.home)
  return Object.fromEntries(env)
}
