/**
 * rtnetlink through `@ctr/namespaces`' `Netlink` (netlink sockets opened by the native addon,
 * inside a given netns when asked; messages built in TypeScript). No shelling out to `ip`.
 */
import { Netlink, type NetnsRef } from '@ctr/namespaces'

export type { NetnsRef }
export type NetlinkHandle = Netlink

/** Opens a netlink handle in `netns` (default: ours). */
export function openNetlink(netns?: NetnsRef): Promise<Netlink> {
  return Netlink.open(netns === undefined ? {} : { netns })
}

/** Runs `f` with a handle in `netns`, closed afterwards. */
export async function withNetlink<T>(netns: NetnsRef | undefined, f: (nl: Netlink) => Promise<T>): Promise<T> {
  const nl = await openNetlink(netns)
  try {
    return await f(nl)
  } finally {
    nl.close()
  }
}
