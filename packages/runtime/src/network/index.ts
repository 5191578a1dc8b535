export { Network, DEFAULT_NETWORK, type NetworkCreateOptions } from './network.js'
export { parsePublish, type PublishedPort } from './proxy.js'
export type { NetnsRef } from './netlink.js'
