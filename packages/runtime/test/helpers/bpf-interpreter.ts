/**
 * A tiny classic-BPF interpreter for seccomp programs, independent of the compiler: it runs
 * a `struct sock_filter[]` on a `struct seccomp_data` and returns the filter's verdict, and
 * checks what the kernel's checker would (jumps in range, only forward, a return at the end).
 */

export interface SeccompData {
  nr: number
  arch: number
  ip?: bigint
  args?: (bigint | number)[]
}

interface Insn {
  code: number
  jt: number
  jf: number
  k: number
}

export function decode(program: Buffer): Insn[] {
  if (program.length === 0 || program.length % 8 !== 0) throw new Error('bad program length')
  const out: Insn[] = []
  for (let o = 0; o < program.length; o += 8) {
    out.push({ code: program.readUInt16LE(o), jt: program.readUInt8(o + 2), jf: program.readUInt8(o + 3), k: program.readUInt32LE(o + 4) })
  }
  return out
}

/** What the kernel's classic-BPF checker and seccomp's own check require. */
export function validate(program: Buffer): void {
  const insns = decode(program)
  if (insns.length > 4096) throw new Error('too long')
  const last = insns[insns.length - 1]!
  if (last.code !== 0x06) throw new Error('last instruction is not a return')
  insns.forEach((i, pc) => {
    const cls = i.code & 0x07
    if (cls === 0x05) {
      const targets = i.code === 0x05 ? [i.k] : [i.jt, i.jf]
      for (const t of targets) if (pc + 1 + t >= insns.length) throw new Error(`jump out of range at ${pc}`)
    } else if (i.code === 0x20) {
      if (i.k % 4 !== 0 || i.k >= 64) throw new Error(`bad seccomp_data load ${i.k} at ${pc}`)
    } else if (![0x06, 0x54].includes(i.code)) {
      throw new Error(`unexpected opcode 0x${i.code.toString(16)} at ${pc}`)
    }
  })
}

function seccompData(d: SeccompData): Buffer {
  const b = Buffer.alloc(64)
  b.writeInt32LE(d.nr, 0)
  b.writeUInt32LE(d.arch >>> 0, 4)
  b.writeBigUInt64LE(d.ip ?? 0n, 8)
  const args = d.args ?? []
  for (let i = 0; i < 6; i++) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(args[i] ?? 0)), 16 + 8 * i)
  return b
}

/** Runs the program; returns the 32-bit verdict and the number of instructions executed. */
export function run(program: Buffer, d: SeccompData): { ret: number; steps: number } {
  const insns = decode(program)
  const data = seccompData(d)
  let A = 0
  let pc = 0
  let steps = 0
  for (;;) {
    const i = insns[pc]
    if (!i) throw new Error(`fell off the end at ${pc}`)
    steps++
    pc++
    switch (i.code) {
      case 0x20: // ld [k]
        A = data.readUInt32LE(i.k)
        break
      case 0x54: // and #k
        A = (A & i.k) >>> 0
        break
      case 0x05: // ja
        pc += i.k
        break
      case 0x15: // jeq
        pc += A === i.k ? i.jt : i.jf
        break
      case 0x25: // jgt
        pc += A > i.k ? i.jt : i.jf
        break
      case 0x35: // jge
        pc += A >= i.k ? i.jt : i.jf
        break
      case 0x45: // jset
        pc += (A & i.k) !== 0 ? i.jt : i.jf
        break
      case 0x06: // ret
        return { ret: i.k >>> 0, steps }
      default:
        throw new Error(`unknown opcode 0x${i.code.toString(16)}`)
    }
  }
}

/** A verdict in words: 'ALLOW', 'ERRNO(1)', 'KILL_PROCESS', 'TRACE(5)', … */
export function verdict(ret: number): string {
  const action = ret & 0xffff0000
  const data = ret & 0xffff
  switch (action >>> 0) {
    case 0x80000000:
      return 'KILL_PROCESS'
    case 0:
      return 'KILL_THREAD'
    case 0x00030000:
      return `TRAP(${data})`
    case 0x00050000:
      return `ERRNO(${data})`
    case 0x7ff00000:
      return `TRACE(${data})`
    case 0x7ffc0000:
      return 'LOG'
    case 0x7fff0000:
      return 'ALLOW'
    default:
      return `0x${ret.toString(16)}`
  }
}

/** Validates and runs; returns the verdict in words. */
export function evaluate(program: Buffer, d: SeccompData): string {
  validate(program)
  return verdict(run(program, d).ret)
}
