/** IPv4 CIDR arithmetic for subnets and addresses. */
import { isIP } from 'node:net'

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

/** IPv6: a /48../120 subnet's prefix and the address of host number `n` in it. */
export interface Subnet6 {
  bytes: Buffer
  prefix: number
}

function v6Bytes(ip: string): Buffer | undefined {
  if (isIP(ip) !== 6) return undefined
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = [...h, ...(tail !== undefined ? Array<string>(8 - h.length - t.length).fill('0') : []), ...t]
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined
  const b = Buffer.alloc(16)
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2))
  return b
}

/** RFC 5952 text of 16 bytes. */
export function formatIp6(b: Buffer): string {
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2))
  let best = -1
  let len = 0
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > len && j - i > 1) { best = i; len = j - i }
    i = j
  }
  const hex = g.map((x) => x.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + len).join(':')}`
}

/** Parses an IPv6 CIDR `fd00:1::/64` (prefix /48../120, host bits zero). */
export function parseSubnet6(cidr: string): Subnet6 {
  const m = /^([0-9a-fA-F:]+)\/(\d{1,3})$/.exec(cidr)
  const bytes = m ? v6Bytes(m[1]!) : undefined
  if (!m || !bytes) throw new Error(`not an IPv6 CIDR: ${cidr}`)
  const prefix = Number(m[2])
  if (prefix < 48 || prefix > 120) throw new Error(`prefix /${prefix} out of range /48../120: ${cidr}`)
  for (let bit = prefix; bit < 128; bit++) if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) throw new Error(`${cidr} has host bits set`)
  return { bytes, prefix }
}

export function formatSubnet6(s: Subnet6): string {
  return `${formatIp6(s.bytes)}/${s.prefix}`
}

/** The address of host number `n` (≥ 1) in the subnet: its last 32 bits. */
export function hostAddress6(s: Subnet6, n: number): string {
  const b = Buffer.from(s.bytes)
  b.writeUInt32BE((b.readUInt32BE(12) | n) >>> 0, 12)
  return formatIp6(b)
}

/** The default IPv6 subnet of an IPv4 one: the ULA fd10:<its 32 bits>::/64 (10.89.3.0/24 → fd10:a59:300::/64). */
export function defaultSubnet6(v4: Subnet): Subnet6 {
  const b = Buffer.alloc(16)
  b.writeUInt16BE(0xfd10, 0)
  b.writeUInt32BE(v4.base >>> 0, 2)
  return { bytes: b, prefix: 64 }
}
