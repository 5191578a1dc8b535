/**
 * IP addresses and CIDRs: validation (node:net isIP), bytes ↔ text (RFC 5952 for IPv6).
 */
import { isIP } from 'node:net'

export interface Cidr {
  family: 4 | 6
  /** The address as given, canonical text. */
  address: string
  bytes: Buffer
  prefix: number
}

/** Parses an address to its bytes; undefined when it is not an IPv4 or IPv6 address. */
export function ipBytes(ip: string): { family: 4 | 6; bytes: Buffer } | undefined {
  const v = isIP(ip)
  if (v === 4) return { family: 4, bytes: Buffer.from(ip.split('.').map(Number)) }
  if (v !== 6) return undefined
  let text = ip.split('%')[0]!
  // a dotted IPv4 tail (::ffff:1.2.3.4) stands for the last two groups
  const last = text.lastIndexOf(':')
  const tail = text.slice(last + 1)
  let v4: number[] | undefined
  if (tail.includes('.')) {
    v4 = tail.split('.').map(Number)
    text = text.slice(0, last + 1) + '0:0'
  }
  const [head, rest] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined]
  const h = head ? head.split(':').map((g) => parseInt(g, 16)) : []
  const r = rest ? rest.split(':').map((g) => parseInt(g, 16)) : []
  const groups = [...h, ...(rest !== undefined ? Array<number>(8 - h.length - r.length).fill(0) : []), ...r]
  if (v4) {
    groups[6] = (v4[0]! << 8) | v4[1]!
    groups[7] = (v4[2]! << 8) | v4[3]!
  }
  if (groups.length !== 8) return undefined
  const b = Buffer.alloc(16)
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2))
  return { family: 6, bytes: b }
}

/** Bytes (4 or 16) to text; IPv6 compressed as RFC 5952 says. */
export function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.')
  const g: number[] = []
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i))
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':')
  if (best < 0) return hex(g)
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

/** Parses `addr/prefix`; a bare address gets the full prefix (32 or 128). Undefined if invalid. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined
  const slash = text.indexOf('/')
  const ip = slash < 0 ? text : text.slice(0, slash)
  const parsed = ipBytes(ip)
  if (!parsed) return undefined
  const max = parsed.family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p)) return undefined
    prefix = Number(p)
    if (prefix > max) return undefined
  }
  return { family: parsed.family, address: formatIp(parsed.bytes), bytes: parsed.bytes, prefix }
}

/** The network part of an address: host bits cleared. */
export function maskBytes(b: Buffer, prefix: number): Buffer {
  const out = Buffer.from(b)
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8))
    out[i]! &= (0xff << (8 - bits)) & 0xff
  }
  return out
}
