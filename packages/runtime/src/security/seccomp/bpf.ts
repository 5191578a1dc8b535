/**
 * A small classic-BPF assembler for seccomp filters: instructions jump to labels, and the
 * assembler turns labels into offsets. A conditional jump's offsets are 8-bit (at most 255
 * instructions forward); a branch that lands further away goes through a `ja` trampoline
 * (32-bit offset) inserted right after the jump. Classic BPF only jumps forward, so a label
 * must be placed after every jump to it.
 */

/** Opcodes (`BPF_CLASS | BPF_SIZE/OP | BPF_MODE/SRC`) the filters use. */
export const BPF = {
  /** `A = *(u32 *)(seccomp_data + k)` */
  LD_W_ABS: 0x20,
  /** `A &= k` */
  ALU_AND_K: 0x54,
  /** `pc += k` */
  JA: 0x05,
  /** `pc += (A == k) ? jt : jf` */
  JEQ_K: 0x15,
  /** `pc += (A > k) ? jt : jf` (unsigned) */
  JGT_K: 0x25,
  /** `pc += (A >= k) ? jt : jf` (unsigned) */
  JGE_K: 0x35,
  /** `pc += (A & k) ? jt : jf` */
  JSET_K: 0x45,
  /** `return k` */
  RET_K: 0x06,
} as const

/** The kernel's limit on a filter's length (`BPF_MAXINSNS`). */
export const BPF_MAXINSNS = 4096

/** A place in the program; placed once, before the instruction it names. */
export class Label {
  /** @internal */ target: Insn | undefined
  constructor(readonly name: string) {}
}

/** Marks a branch that continues with the next instruction emitted. */
export const NEXT = Symbol('next')
type Target = Label | typeof NEXT

interface Insn {
  code: number
  k: number
  jt: Insn | Label | typeof NEXT | undefined
  jf: Insn | Label | typeof NEXT | undefined
}

/** One decoded `struct sock_filter`. */
export interface SockFilter {
  code: number
  jt: number
  jf: number
  k: number
}

function isJump(code: number): boolean {
  return (code & 0x07) === 0x05
}

export class BpfAssembler {
  private readonly insns: Insn[] = []
  private pending: Label[] = []
  private nextWaiters: Insn[] = []

  /** A new, unplaced label. */
  label(name = 'L'): Label {
    return new Label(name)
  }

  /** Places `label` before the next instruction emitted. */
  place(label: Label): this {
    if (label.target !== undefined || this.pending.includes(label)) throw new Error(`label ${label.name} placed twice`)
    this.pending.push(label)
    return this
  }

  private emit(code: number, k: number, jt?: Target | Insn, jf?: Target | Insn): this {
    const insn: Insn = { code, k: k >>> 0, jt, jf }
    for (const l of this.pending) l.target = insn
    this.pending = []
    for (const w of this.nextWaiters) {
      if (w.jt === NEXT) w.jt = insn
      if (w.jf === NEXT) w.jf = insn
    }
    this.nextWaiters = []
    if (jt === NEXT || jf === NEXT) this.nextWaiters.push(insn)
    this.insns.push(insn)
    return this
  }

  /** `A = seccomp_data[offset]` (32 bits). */
  load(offset: number): this {
    return this.emit(BPF.LD_W_ABS, offset)
  }

  /** `A &= k`. */
  and(k: number): this {
    return this.emit(BPF.ALU_AND_K, k)
  }

  /** A conditional jump: `JEQ_K`, `JGT_K`, `JGE_K` or `JSET_K`. */
  jump(code: number, k: number, jt: Target, jf: Target): this {
    return this.emit(code, k, jt, jf)
  }

  /** An unconditional jump. */
  ja(target: Label): this {
    return this.emit(BPF.JA, 0, target)
  }

  /** `return k`. */
  ret(k: number): this {
    return this.emit(BPF.RET_K, k)
  }

  /** Number of instructions emitted so far (before trampolines). */
  get length(): number {
    return this.insns.length
  }

  /**
   * Resolves labels, inserts trampolines for far conditional branches, and returns the
   * program as `struct sock_filter[]` bytes (8 bytes each, little-endian). Throws when a label
   * was never placed, a jump goes backwards, or the program exceeds `maxInsns`.
   */
  assemble(maxInsns = BPF_MAXINSNS): { program: Buffer; filters: SockFilter[] } {
    if (this.pending.length > 0 || this.nextWaiters.length > 0) throw new Error('a label or NEXT branch points past the last instruction')
    const insns = [...this.insns]
    const resolve = (t: Insn['jt']): Insn => {
      if (t === undefined || t === NEXT) throw new Error('unresolved branch')
      if (t instanceof Label) {
        if (!t.target) throw new Error(`label ${t.name} was never placed`)
        return t.target
      }
      return t
    }
    for (const insn of insns) {
      if (insn.jt !== undefined) insn.jt = resolve(insn.jt)
      if (insn.jf !== undefined) insn.jf = resolve(insn.jf)
    }
    // Insert trampolines until every conditional branch is within 255. Insertions only
    // lengthen other jumps, and a jump gets at most one trampoline per branch (its
    // trampolines sit right after it), so this ends.
    for (;;) {
      const index = new Map<Insn, number>()
      insns.forEach((insn, i) => index.set(insn, i))
      const far: { at: number; insn: Insn; jt: boolean; jf: boolean }[] = []
      insns.forEach((insn, i) => {
        if (!isJump(insn.code) || insn.code === BPF.JA) return
        const t = index.get(insn.jt as Insn)! - i - 1
        const f = index.get(insn.jf as Insn)! - i - 1
        if (t < 0 || f < 0) throw new Error('classic BPF cannot jump backwards')
        if (t > 255 || f > 255) far.push({ at: i, insn, jt: t > 255, jf: f > 255 })
      })
      if (far.length === 0) break
      for (const { at, insn, jt, jf } of far.reverse()) {
        const tramps: Insn[] = []
        if (jt) {
          const t: Insn = { code: BPF.JA, k: 0, jt: insn.jt as Insn, jf: undefined }
          insn.jt = t
          tramps.push(t)
        }
        if (jf) {
          const t: Insn = { code: BPF.JA, k: 0, jt: insn.jf as Insn, jf: undefined }
          insn.jf = t
          tramps.push(t)
        }
        insns.splice(at + 1, 0, ...tramps)
      }
    }
    if (insns.length > maxInsns) throw new RangeError(`the filter needs ${insns.length} instructions, more than the kernel's limit of ${maxInsns}`)
    const index = new Map<Insn, number>()
    insns.forEach((insn, i) => index.set(insn, i))
    const filters: SockFilter[] = insns.map((insn, i) => {
      if (insn.code === BPF.JA) {
        const off = index.get(insn.jt as Insn)! - i - 1
        if (off < 0) throw new Error('classic BPF cannot jump backwards')
        return { code: insn.code, jt: 0, jf: 0, k: off }
      }
      if (isJump(insn.code)) {
        return { code: insn.code, jt: index.get(insn.jt as Insn)! - i - 1, jf: index.get(insn.jf as Insn)! - i - 1, k: insn.k }
      }
      return { code: insn.code, jt: 0, jf: 0, k: insn.k }
    })
    return { program: encodeFilters(filters), filters }
  }
}

/** `struct sock_filter[]` bytes: u16 code, u8 jt, u8 jf, u32 k, little-endian. */
export function encodeFilters(filters: readonly SockFilter[]): Buffer {
  const buf = Buffer.alloc(filters.length * 8)
  filters.forEach((f, i) => {
    buf.writeUInt16LE(f.code, i * 8)
    buf.writeUInt8(f.jt, i * 8 + 2)
    buf.writeUInt8(f.jf, i * 8 + 3)
    buf.writeUInt32LE(f.k >>> 0, i * 8 + 4)
  })
  return buf
}

/** The inverse of {@link encodeFilters}. */
export function decodeFilters(program: Buffer): SockFilter[] {
  if (program.length % 8 !== 0) throw new Error('a sock_filter program is a multiple of 8 bytes')
  const out: SockFilter[] = []
  for (let o = 0; o < program.length; o += 8) {
    out.push({ code: program.readUInt16LE(o), jt: program.readUInt8(o + 2), jf: program.readUInt8(o + 3), k: program.readUInt32LE(o + 4) })
  }
  return out
}
