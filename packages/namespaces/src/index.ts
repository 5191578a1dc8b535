/**
 * `@ctr/namespaces`: start processes in new or existing Linux namespaces from Node.js, with
 * a root filesystem set up inside the child before it execs.
 *
 * @example
 * ```ts
 * import { spawn, readText } from '@ctr/namespaces'
 * const child = await spawn({
 *   argv: ['/bin/sh', '-c', 'echo $$; hostname'],
 *   namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'],
 *   hostname: 'box',
 *   stdio: ['ignore', 'pipe', 'pipe'],
 * })
 * console.log(await readText(child.stdout)) // "1\nbox\n"
 * await child.exited // { code: 0, signal: null }
 * ```
 * @packageDocumentation
 */
export { spawn } from './spawn.js'
export { enter } from './enter.js'
export { readText } from './stdio.js'
export { namespaceId, namespaceIds, sameNamespace, NAMESPACE_TYPES, type NamespaceType } from './ids.js'
export { SpawnError, InvalidOptionsError, AbortError } from './errors.js'
export { CAPABILITIES, type CapabilityName } from './capabilities.js'
export { RLIMITS, type RlimitName } from './rlimits.js'
export { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './rootfs.js'
export { secureJoin } from './secure-join.js'
export { Netlink, NetlinkBatch, NetlinkError, type LinkRef, type LinkSettings, type VethSpec, type Link, type AddressInfo, type RouteSpec, type RouteInfo, type NetnsRef } from './netlink/index.js'
export type {
  Child,
  ExitStatus,
  SpawnOptions,
  EnterOptions,
  ProcessOptions,
  RootfsOptions,
  RootFilesystem,
  SeccompFilter,
  MountSpec,
  IdMapEntry,
  Stdio,
  Rlimits,
  CapabilitySets,
  CgroupPlacement,
} from './types.js'
