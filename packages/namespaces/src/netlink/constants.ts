/**
 * Netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
 * linux/if_addr.h). Only what the {@link Netlink} client uses.
 */

export const NETLINK_ROUTE = 0

export const AF_UNSPEC = 0
export const AF_INET = 2
export const AF_INET6 = 10

// nlmsghdr
export const NLMSG_HDRLEN = 16
export const NLMSG_ERROR = 2
export const NLMSG_DONE = 3

export const NLM_F_REQUEST = 0x01
export const NLM_F_MULTI = 0x02
export const NLM_F_ACK = 0x04
export const NLM_F_DUMP = 0x300
export const NLM_F_REPLACE = 0x100
export const NLM_F_EXCL = 0x200
export const NLM_F_CREATE = 0x400
/** In an NLMSG_ERROR: the original request was capped to its header. */
export const NLM_F_CAPPED = 0x100
/** In an NLMSG_ERROR: extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200
export const NLMSGERR_ATTR_MSG = 1

// message types
export const RTM_NEWLINK = 16
export const RTM_DELLINK = 17
export const RTM_GETLINK = 18
export const RTM_NEWADDR = 20
export const RTM_DELADDR = 21
export const RTM_GETADDR = 22
export const RTM_NEWROUTE = 24
export const RTM_DELROUTE = 25
export const RTM_GETROUTE = 26

// struct sizes
export const IFINFOMSG_LEN = 16
export const IFADDRMSG_LEN = 8
export const RTMSG_LEN = 12

// rtattr
export const NLA_F_NESTED = 0x8000
export const NLA_TYPE_MASK = 0x3fff

// IFLA_*
export const IFLA_ADDRESS = 1
export const IFLA_IFNAME = 3
export const IFLA_MTU = 4
export const IFLA_LINK = 5
export const IFLA_MASTER = 10
export const IFLA_OPERSTATE = 16
export const IFLA_LINKINFO = 18
export const IFLA_NET_NS_PID = 19
export const IFLA_NET_NS_FD = 28
export const IFLA_INFO_KIND = 1
export const IFLA_INFO_DATA = 2
export const VETH_INFO_PEER = 1

// ifi_flags
export const IFF_UP = 0x1
export const IFF_LOOPBACK = 0x8
export const IFF_RUNNING = 0x40
export const IFF_LOWER_UP = 0x10000

// IFA_*
export const IFA_ADDRESS = 1
export const IFA_LOCAL = 2
export const IFA_LABEL = 3
export const IFA_FLAGS = 8
export const IFA_F_NODAD = 0x02
export const IFA_F_PERMANENT = 0x80

// RTA_*
export const RTA_DST = 1
export const RTA_OIF = 4
export const RTA_GATEWAY = 5
export const RTA_PRIORITY = 6
export const RTA_TABLE = 15

export const RT_TABLE_MAIN = 254
export const RTPROT_BOOT = 3
export const RT_SCOPE_UNIVERSE = 0
export const RT_SCOPE_LINK = 253
export const RT_SCOPE_NOWHERE = 255
export const RTN_UNICAST = 1
