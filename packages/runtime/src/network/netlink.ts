/**
 * The rtnetlink operations the network code uses, from `@ctr/namespaces`' `Netlink` class
 * (netlink sockets opened by the native addon, inside a given netns when asked; messages
 * built in TypeScript). No shelling out to `ip`.
 */
import * as namespaces from '@ctr/namespaces'
import { RuntimeError } from '../errors.js'

/** A netns: a pid (its network namespace) or a path (`/run/netns/x`, `/proc/<pid>/ns/net`). */
export type NetnsRef = number | string

/** The subset of `@ctr/namespaces`' `Netlink` this package needs. */
export interface NetlinkHandle {
  close(): void
  link(name: string): Promise<{ index: number; name: string; up: boolean } | undefined>
  links(): Promise<{ index: number; name: string; up: boolean; kind?: string }[]>
  createVeth(name: string, peer: string, options?: { peerNetns?: NetnsRef; mtu?: number }): Promise<void>
  createBridge(name: string, options?: { mtu?: number }): Promise<void>
  setMaster(name: string, bridge: string | null): Promise<void>
  setUp(name: string, up?: boolean): Promise<void>
  rename(name: string, newName: string): Promise<void>
  deleteLink(name: string): Promise<void>
  addAddress(name: string, cidr: string): Promise<void>
  addresses(name?: string): Promise<{ link: string; cidr: string; family: 4 | 6 }[]>
  addRoute(route: { dst: string; gateway?: string; dev?: string; family?: 4 | 6 }): Promise<void>
  routes(family?: 4 | 6): Promise<{ dst: string; gateway?: string; dev?: string }[]>
}

type Opener = (netns?: NetnsRef) => Promise<NetlinkHandle>
let override: Opener | undefined

/** @internal Replaces how netlink handles are opened (tests of code paths without the class). */
export function setNetlinkOpener(opener: Opener | undefined): void {
  override = opener
}

/** Opens a netlink handle in `netns` (default: ours). */
export async function openNetlink(netns?: NetnsRef): Promise<NetlinkHandle> {
  if (override) return override(netns)
  const N = (namespaces as unknown as Record<string, unknown>)['Netlink'] as { open(o?: { netns?: NetnsRef }): Promise<NetlinkHandle> } | undefined
  if (!N) throw new RuntimeError('ERR_RUNTIME_STATE', 'bridge networking needs @ctr/namespaces with Netlink')
  return N.open(netns === undefined ? {} : { netns })
}

/** Runs `f` with a handle in `netns`, closed afterwards. */
export async function withNetlink<T>(netns: NetnsRef | undefined, f: (nl: NetlinkHandle) => Promise<T>): Promise<T> {
  const nl = await openNetlink(netns)
  try {
    return await f(nl)
  } finally {
    nl.close()
  }
}
