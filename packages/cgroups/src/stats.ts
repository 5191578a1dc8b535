/** Usage figures, in one shape whatever the cgroup version. */

export interface PsiLine {
  avg10: number
  avg60: number
  avg300: number
  /** Total stall time in µs. */
  total: number
}

/** Pressure stall information of one resource. */
export interface Psi {
  some: PsiLine
  full?: PsiLine
}

export interface CgroupStats {
  memory: {
    /** Bytes in use now. */
    current: number
    /** Highest use seen, where the kernel records it (v1 always, v2 from Linux 5.19). */
    peak?: number
    limit: number | 'max'
    /** Swap in use, where accounted. */
    swap?: number
    /** memory.stat, as numbers. */
    stat: Record<string, number>
  }
  cpu: {
    usageUsec: number
    userUsec: number
    systemUsec: number
    periods: number
    throttledPeriods: number
    throttledUsec: number
  }
  pids: { current: number; max: number | 'max' }
  io: { major: number; minor: number; readBytes: number; writeBytes: number; readOps: number; writeOps: number }[]
  /** Pressure stall information where the kernel has it. */
  psi?: { cpu?: Psi; memory?: Psi; io?: Psi }
}

/**
 * What a finished job used, read from as few files as possible (two or three, against a dozen
 * for {@link CgroupStats}): peak memory and CPU time.
 */
export interface CgroupUsage {
  /** Highest memory use seen, where the kernel records it (v1 always, v2 from Linux 5.19). */
  memoryPeak?: number
  cpu: { usageUsec: number; userUsec: number; systemUsec: number }
}

/** Parses a PSI file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0"). */
export function parsePsi(text: string | undefined): Psi | undefined {
  if (!text) return undefined
  const lines: Partial<Record<'some' | 'full', PsiLine>> = {}
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/)
    if (kind !== 'some' && kind !== 'full') continue
    const v: Record<string, number> = {}
    for (const f of fields) {
      const [k, n] = f.split('=')
      if (k && n !== undefined) v[k] = Number(n)
    }
    lines[kind] = { avg10: v.avg10 ?? 0, avg60: v.avg60 ?? 0, avg300: v.avg300 ?? 0, total: v.total ?? 0 }
  }
  return lines.some ? { some: lines.some, ...(lines.full ? { full: lines.full } : {}) } : undefined
}
