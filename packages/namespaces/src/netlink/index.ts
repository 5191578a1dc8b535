export { Netlink, NetlinkBatch, type LinkRef, type LinkSettings, type VethSpec, type Link, type AddressInfo, type RouteSpec, type RouteInfo, type NetnsRef } from './client.js'
export { NetlinkError } from './errors.js'
export { parseCidr, formatIp } from './addr.js'
