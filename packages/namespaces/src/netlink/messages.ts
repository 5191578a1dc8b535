/**
 * Encoding and decoding of rtnetlink messages: nlmsghdr, ifinfomsg, ifaddrmsg, rtmsg and
 * (nested) rtattrs. Pure functions over Buffers, host byte order (little-endian on every
 * architecture ctr runs on: x86_64, aarch64).
 */
import {
  IFADDRMSG_LEN,
  IFINFOMSG_LEN,
  NLA_F_NESTED,
  NLA_TYPE_MASK,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSGERR_ATTR_MSG,
  RTMSG_LEN,
} from './constants.js'

const align4 = (n: number): number => (n + 3) & ~3

/** An attribute to encode: raw bytes, or nested attributes (NLA_F_NESTED is set). */
export interface Attr {
  type: number
  value: Buffer | Attr[]
}

export const u32Attr = (type: number, v: number): Attr => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v >>> 0)
  return { type, value: b }
}
/** A NUL-terminated string attribute (IFLA_IFNAME, IFLA_INFO_KIND). */
export const strAttr = (type: number, s: string): Attr => ({ type, value: Buffer.from(s + '\0', 'utf8') })
export const bytesAttr = (type: number, b: Buffer): Attr => ({ type, value: b })
export const nestAttr = (type: number, attrs: Attr[]): Attr => ({ type, value: attrs })

/** Encodes attributes, each padded to 4 bytes. */
export function encodeAttrs(attrs: Attr[]): Buffer {
  const parts: Buffer[] = []
  for (const a of attrs) {
    const payload = Buffer.isBuffer(a.value) ? a.value : encodeAttrs(a.value)
    const len = 4 + payload.length
    const b = Buffer.alloc(align4(len))
    b.writeUInt16LE(len, 0)
    b.writeUInt16LE(Buffer.isBuffer(a.value) ? a.type : a.type | NLA_F_NESTED, 2)
    payload.copy(b, 4)
    parts.push(b)
  }
  return Buffer.concat(parts)
}

/** Decoded attributes: type (flags masked off) → payload; a repeated type keeps the last one. */
export type Attrs = Map<number, Buffer>

/** Decodes a run of attributes. Malformed trailing bytes are ignored, as the kernel does. */
export function parseAttrs(buf: Buffer): Attrs {
  const out: Attrs = new Map()
  let off = 0
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off)
    if (len < 4 || off + len > buf.length) break
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len))
    off += align4(len)
  }
  return out
}

/** A NUL-terminated string payload. */
export function attrString(b: Buffer | undefined): string | undefined {
  if (!b) return undefined
  const end = b.indexOf(0)
  return b.toString('utf8', 0, end < 0 ? b.length : end)
}

export const attrU32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined)

// ---------------------------------------------------------------- headers

export interface NlHeader {
  len: number
  type: number
  flags: number
  seq: number
  pid: number
}

/** A whole message: header + body (the family header + attributes). */
export function encodeMessage(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + body.length)
  b.writeUInt32LE(b.length, 0)
  b.writeUInt16LE(type, 4)
  b.writeUInt16LE(flags, 6)
  b.writeUInt32LE(seq >>> 0, 8)
  b.writeUInt32LE(0, 12)
  body.copy(b, NLMSG_HDRLEN)
  return b
}

export function parseHeader(b: Buffer): NlHeader {
  return { len: b.readUInt32LE(0), type: b.readUInt16LE(4), flags: b.readUInt16LE(6), seq: b.readUInt32LE(8), pid: b.readUInt32LE(12) }
}

/** The body (after nlmsghdr) of a message, bounded by nlmsg_len. */
export const messageBody = (b: Buffer): Buffer => b.subarray(NLMSG_HDRLEN, Math.min(b.length, b.readUInt32LE(0)))

/** An NLMSG_ERROR: errno 0 is an ack; `message` is the kernel's extended-ack text. */
export interface NlError {
  errno: number
  message?: string
}

/** Parses an NLMSG_ERROR message, or returns undefined for any other type. */
export function parseError(msg: Buffer): NlError | undefined {
  const h = parseHeader(msg)
  if (h.type !== NLMSG_ERROR) return undefined
  const body = messageBody(msg)
  const errno = 0 - body.readInt32LE(0) || 0
  const out: NlError = { errno }
  if (h.flags & NLM_F_ACK_TLVS && body.length >= 4 + NLMSG_HDRLEN) {
    // the echoed request: only its header when capped, the whole of it otherwise
    const origLen = h.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : body.readUInt32LE(4)
    const attrs = parseAttrs(body.subarray(4 + align4(origLen)))
    const text = attrString(attrs.get(NLMSGERR_ATTR_MSG))
    if (text) out.message = text
  }
  return out
}

// ---------------------------------------------------------------- family headers

export interface IfInfoMsg {
  family: number
  type: number
  index: number
  flags: number
  change: number
}

export function encodeIfInfo(m: Partial<IfInfoMsg>, attrs: Attr[] = []): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN)
  b.writeUInt8(m.family ?? 0, 0)
  b.writeUInt16LE(m.type ?? 0, 2)
  b.writeInt32LE(m.index ?? 0, 4)
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8)
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12)
  return Buffer.concat([b, encodeAttrs(attrs)])
}

export function parseIfInfo(body: Buffer): { msg: IfInfoMsg; attrs: Attrs } {
  return {
    msg: { family: body.readUInt8(0), type: body.readUInt16LE(2), index: body.readInt32LE(4), flags: body.readUInt32LE(8), change: body.readUInt32LE(12) },
    attrs: parseAttrs(body.subarray(IFINFOMSG_LEN)),
  }
}

export interface IfAddrMsg {
  family: number
  prefixlen: number
  flags: number
  scope: number
  index: number
}

export function encodeIfAddr(m: IfAddrMsg, attrs: Attr[] = []): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN)
  b.writeUInt8(m.family, 0)
  b.writeUInt8(m.prefixlen, 1)
  b.writeUInt8(m.flags & 0xff, 2)
  b.writeUInt8(m.scope, 3)
  b.writeUInt32LE(m.index, 4)
  return Buffer.concat([b, encodeAttrs(attrs)])
}

export function parseIfAddr(body: Buffer): { msg: IfAddrMsg; attrs: Attrs } {
  return {
    msg: { family: body.readUInt8(0), prefixlen: body.readUInt8(1), flags: body.readUInt8(2), scope: body.readUInt8(3), index: body.readUInt32LE(4) },
    attrs: parseAttrs(body.subarray(IFADDRMSG_LEN)),
  }
}

export interface RtMsg {
  family: number
  dstLen: number
  srcLen: number
  tos: number
  table: number
  protocol: number
  scope: number
  type: number
  flags: number
}

export function encodeRt(m: Partial<RtMsg> & { family: number }, attrs: Attr[] = []): Buffer {
  const b = Buffer.alloc(RTMSG_LEN)
  b.writeUInt8(m.family, 0)
  b.writeUInt8(m.dstLen ?? 0, 1)
  b.writeUInt8(m.srcLen ?? 0, 2)
  b.writeUInt8(m.tos ?? 0, 3)
  b.writeUInt8(m.table ?? 0, 4)
  b.writeUInt8(m.protocol ?? 0, 5)
  b.writeUInt8(m.scope ?? 0, 6)
  b.writeUInt8(m.type ?? 0, 7)
  b.writeUInt32LE(m.flags ?? 0, 8)
  return Buffer.concat([b, encodeAttrs(attrs)])
}

export function parseRt(body: Buffer): { msg: RtMsg; attrs: Attrs } {
  return {
    msg: {
      family: body.readUInt8(0),
      dstLen: body.readUInt8(1),
      srcLen: body.readUInt8(2),
      tos: body.readUInt8(3),
      table: body.readUInt8(4),
      protocol: body.readUInt8(5),
      scope: body.readUInt8(6),
      type: body.readUInt8(7),
      flags: body.readUInt32LE(8),
    },
    attrs: parseAttrs(body.subarray(RTMSG_LEN)),
  }
}

// ---------------------------------------------------------------- link-layer addresses

/** `aa:bb:cc:dd:ee:ff` from bytes. */
export const formatMac = (b: Buffer): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':')
