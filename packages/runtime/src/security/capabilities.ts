/**
 * Capabilities as Docker grants them: a default set, `--cap-add` / `--cap-drop` (with `ALL`),
 * and `--privileged`. The names and numbers come from `@ctr/namespaces`.
 */
import { readFileSync } from 'node:fs'
import { CAPABILITIES, type CapabilityName, type CapabilitySets } from '@ctr/namespaces'
import { invalidOption } from '../errors.js'

/**
 * Docker's default capability set (moby `oci/caps/defaults.go`): what a container gets
 * without `--cap-add` / `--cap-drop`.
 */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const)

/**
 * `CAP_SYS_ADMIN`, `sys_admin` and `SYS_ADMIN` all become `CAP_SYS_ADMIN`. The result is
 * upper case with the prefix, known to the kernel or not.
 */
export function normalizeCapabilityName(name: string): string {
  const upper = name.trim().toUpperCase()
  return upper.startsWith('CAP_') ? upper : `CAP_${upper}`
}

function isCapabilityName(name: string): name is CapabilityName {
  return (CAPABILITIES as readonly string[]).includes(name)
}

let lastCap: number | undefined

/** Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`), in kernel order. */
export function allCapabilities(): CapabilityName[] {
  if (lastCap === undefined) {
    try {
      lastCap = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10)
    } catch {
      lastCap = CAPABILITIES.length - 1
    }
    if (!Number.isInteger(lastCap) || lastCap < 0) lastCap = CAPABILITIES.length - 1
  }
  return CAPABILITIES.slice(0, Math.min(lastCap, CAPABILITIES.length - 1) + 1)
}

export interface CapabilityOptions {
  /** Capabilities to add to the default set (`NET_ADMIN`, `CAP_NET_ADMIN`, any case, or `ALL`). */
  capAdd?: readonly string[]
  /** Capabilities to remove from the default set (or `ALL`: start from nothing but `capAdd`). */
  capDrop?: readonly string[]
  /** Every capability the kernel knows; `capAdd` and `capDrop` are then ignored, as in Docker. */
  privileged?: boolean
}

function normalizeList(list: readonly string[] | undefined, field: string): { caps: CapabilityName[]; all: boolean } {
  const caps: CapabilityName[] = []
  let all = false
  ;(list ?? []).forEach((raw, i) => {
    if (typeof raw !== 'string') throw invalidOption(`${field}.${i}`, 'must be a string')
    if (raw.trim().toUpperCase() === 'ALL') {
      all = true
      return
    }
    const name = normalizeCapabilityName(raw)
    if (!isCapabilityName(name)) throw invalidOption(`${field}.${i}`, `unknown capability "${raw}"`)
    if (!caps.includes(name)) caps.push(name)
  })
  return { caps, all }
}

/**
 * The capability set of a container, with Docker's rules (moby `TweakCapabilities`):
 * `privileged` gives every capability; `capAdd: ['ALL']` gives every capability but those in
 * `capDrop`; `capDrop: ['ALL']` gives only `capAdd`; otherwise the default set minus
 * `capDrop` plus `capAdd`. Names are case-insensitive and the `CAP_` prefix is optional;
 * an unknown name throws a {@link RuntimeError} `ERR_RUNTIME_INVALID_OPTIONS` whose `field`
 * is `capAdd.<i>` or `capDrop.<i>`. The result is in kernel order, without duplicates.
 *
 * @example
 * ```ts
 * import { resolveCapabilities, capabilitySets } from '@ctr/runtime'
 * const caps = resolveCapabilities({ capAdd: ['net_admin'], capDrop: ['MKNOD'] })
 * // [..., 'CAP_NET_ADMIN', ...] without CAP_MKNOD
 * await spawn({ argv: ['sh'], capabilities: capabilitySets(caps), noNewPrivileges: true })
 * ```
 */
export function resolveCapabilities(options: CapabilityOptions = {}): CapabilityName[] {
  const all = allCapabilities()
  // Nobody can hand out a capability outside its own bounding set (capset fails with EPERM):
  // "all" means all that this process has, as with `docker run --privileged` in a container.
  if (options.privileged) return all.filter((c) => ownBoundingSet().has(c))
  const add = normalizeList(options.capAdd, 'capAdd')
  const drop = normalizeList(options.capDrop, 'capDrop')
  let caps: CapabilityName[]
  if (add.all) caps = all.filter((c) => !drop.caps.includes(c))
  else if (drop.all) caps = add.caps
  else caps = [...DEFAULT_CAPABILITIES.filter((c) => !drop.caps.includes(c)), ...add.caps]
  const set = new Set(caps)
  return CAPABILITIES.filter((c) => set.has(c))
}

/**
 * The capability sets of a container process for `@ctr/namespaces`' `capabilities` option, as
 * runc sets them for Docker: bounding, effective and permitted are `caps`, inheritable and
 * ambient are empty. (A non-root user loses effective and permitted at exec, as in Docker.)
 */
export function capabilitySets(caps: readonly string[]): CapabilitySets {
  const list = [...caps]
  return { bounding: list, effective: list, permitted: list, inheritable: [], ambient: [] }
}

let ownBounding: Set<string> | undefined

/** The capabilities in this process's bounding set (CapBnd of /proc/self/status). */
function ownBoundingSet(): Set<string> {
  if (ownBounding) return ownBounding
  const status = readFileSync('/proc/self/status', 'utf8')
  const mask = BigInt('0x' + (/^CapBnd:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'))
  ownBounding = new Set(allCapabilities().filter((c) => (mask >> BigInt(CAPABILITIES.indexOf(c))) & 1n))
  return ownBounding
}
