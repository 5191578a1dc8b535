/**
 * rtnetlink message encoding/decoding and address parsing: pure functions, no kernel.
 */
import { describe, expect, it } from 'vitest'
import { formatIp, maskBytes, parseCidr } from '../src/netlink/addr.js'
import * as C from '../src/netlink/constants.js'
import {
  attrString,
  attrU32,
  encodeAttrs,
  encodeIfInfo,
  encodeMessage,
  nestAttr,
  parseAttrs,
  parseError,
  parseHeader,
  parseIfInfo,
  strAttr,
  u32Attr,
} from '../src/netlink/messages.js'
import { NetlinkError } from '../src/index.js'

describe('netlink messages', () => {
  it('encodes attributes padded to 4 bytes, nested ones flagged', () => {
    const b = encodeAttrs([strAttr(C.IFLA_IFNAME, 'eth0'), nestAttr(C.IFLA_LINKINFO, [strAttr(C.IFLA_INFO_KIND, 'veth')])])
    // "eth0\0" = 5 bytes → len 9, padded to 12; nested: 4 + (4 + 5 → 12) = 16
    expect(b.length).toBe(12 + 16)
    expect(b.readUInt16LE(0)).toBe(9)
    expect(b.readUInt16LE(2)).toBe(C.IFLA_IFNAME)
    expect(b.readUInt16LE(12)).toBe(16)
    expect(b.readUInt16LE(14)).toBe(C.IFLA_LINKINFO | C.NLA_F_NESTED)
    const attrs = parseAttrs(b)
    expect(attrString(attrs.get(C.IFLA_IFNAME))).toBe('eth0')
    expect(attrString(parseAttrs(attrs.get(C.IFLA_LINKINFO)!).get(C.IFLA_INFO_KIND))).toBe('veth')
  })

  it('round-trips a message header and an ifinfomsg', () => {
    const body = encodeIfInfo({ index: 7, flags: C.IFF_UP, change: C.IFF_UP }, [u32Attr(C.IFLA_MTU, 1400)])
    const msg = encodeMessage(C.RTM_NEWLINK, C.NLM_F_REQUEST | C.NLM_F_ACK, 42, body)
    expect(parseHeader(msg)).toEqual({ len: msg.length, type: C.RTM_NEWLINK, flags: 5, seq: 42, pid: 0 })
    const { msg: ifi, attrs } = parseIfInfo(msg.subarray(16))
    expect(ifi).toMatchObject({ index: 7, flags: 1, change: 1 })
    expect(attrU32(attrs.get(C.IFLA_MTU))).toBe(1400)
  })

  it('parses acks, errors and extended-ack text', () => {
    const err = (errno: number, flags = 0, tlv?: Buffer) => {
      const body = Buffer.alloc(4 + 16)
      body.writeInt32LE(-errno, 0)
      body.writeUInt32LE(16, 4)
      return encodeMessage(C.NLMSG_ERROR, flags, 1, tlv ? Buffer.concat([body, tlv]) : body)
    }
    expect(parseError(err(0))).toEqual({ errno: 0 })
    expect(parseError(err(17))).toEqual({ errno: 17 })
    const tlv = encodeAttrs([strAttr(C.NLMSGERR_ATTR_MSG, 'Invalid prefix for given prefix length')])
    expect(parseError(err(22, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS, tlv))).toEqual({ errno: 22, message: 'Invalid prefix for given prefix length' })
    expect(parseError(encodeMessage(C.RTM_NEWLINK, 0, 1, Buffer.alloc(16)))).toBeUndefined()
  })

  it('ignores a truncated trailing attribute', () => {
    const b = Buffer.concat([encodeAttrs([u32Attr(1, 5)]), Buffer.from([200, 0, 2, 0])])
    expect([...parseAttrs(b).keys()]).toEqual([1])
  })

  it('NetlinkError says the operation and the errno, crun style', () => {
    const e = new NetlinkError('add address 10.0.0.1/24 to veth0', 17)
    expect(e.message).toBe('add address 10.0.0.1/24 to veth0: EEXIST (File exists)')
    expect(e).toMatchObject({ code: 'ERR_NETLINK', errno: 17, errnoCode: 'EEXIST', operation: 'add address 10.0.0.1/24 to veth0' })
  })
})

describe('addresses and CIDRs', () => {
  it('parses IPv4 and IPv6 CIDRs', () => {
    expect(parseCidr('10.88.0.1/16')).toMatchObject({ family: 4, address: '10.88.0.1', prefix: 16 })
    expect(parseCidr('10.88.0.1')).toMatchObject({ family: 4, prefix: 32 })
    expect(parseCidr('fd00::1/64')).toMatchObject({ family: 6, address: 'fd00::1', prefix: 64 })
    expect(parseCidr('FD00:0:0:0:0:0:0:1')?.address).toBe('fd00::1')
    expect(parseCidr('::ffff:10.0.0.1')?.bytes.toString('hex')).toBe('00000000000000000000ffff0a000001')
    expect(parseCidr('::/0')).toMatchObject({ address: '::', prefix: 0 })
    for (const bad of ['10.0.0.300/24', '10.0.0.1/33', 'fd00::1/129', '10.0.0.1/', '10.0.0.1/-1', 'x', '', '1.2.3/8', 'fd00::1/6 4'])
      expect(parseCidr(bad), bad).toBeUndefined()
  })

  it('formats IPv6 as RFC 5952 does', () => {
    const f = (s: string) => formatIp(parseCidr(s)!.bytes)
    expect(f('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1')
    expect(f('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1') // one zero group is not compressed
    expect(f('fe80::')).toBe('fe80::')
    expect(f('::1')).toBe('::1')
    expect(f('::')).toBe('::')
  })

  it('masks host bits', () => {
    expect(formatIp(maskBytes(parseCidr('10.88.7.9')!.bytes, 16))).toBe('10.88.0.0')
    expect(formatIp(maskBytes(parseCidr('10.88.7.9')!.bytes, 20))).toBe('10.88.0.0')
    expect(formatIp(maskBytes(parseCidr('fd00:1:2:3::9')!.bytes, 48))).toBe('fd00:1:2::')
  })
})
