/** IPv4 CIDR arithmetic for subnets and addresses. */

export function ipToInt(ip: string): number {
  const parts = ip.split('.')
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`not an IPv4 address: ${ip}`)
  return parts.reduce((n, p) => n * 256 + Number(p), 0)
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

export interface Subnet {
  /** The network address as a number. */
  base: number
  prefix: number
  /** Number of addresses. */
  size: number
}

/** Parses `a.b.c.d/n` (host bits must be zero). */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr)
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`)
  const prefix = Number(m[2])
  if (prefix < 8 || prefix > 30) throw new Error(`prefix /${prefix} out of range /8../30: ${cidr}`)
  const size = 2 ** (32 - prefix)
  const base = ipToInt(m[1]!)
  if (base % size !== 0) throw new Error(`${cidr} has host bits set`)
  return { base, prefix, size }
}

export function formatSubnet(s: Subnet): string {
  return `${intToIp(s.base)}/${s.prefix}`
}

export function contains(s: Subnet, ip: number): boolean {
  return ip >= s.base && ip < s.base + s.size
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size
}
