import { readFileSync } from 'node:fs'

/** Linux capability names in kernel order: the index is the capability number. */
export const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const

export type CapabilityName = (typeof CAPABILITIES)[number]

let lastCap: number | undefined

/** The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`). */
export function lastCapability(): number {
  if (lastCap === undefined) {
    try {
      lastCap = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10)
    } catch {
      lastCap = CAPABILITIES.length - 1
    }
  }
  return lastCap
}

/** Capability number for a name (`CAP_` prefix optional, any case), or undefined. */
export function capabilityNumber(name: string): number | undefined {
  const upper = name.toUpperCase()
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`
  const i = (CAPABILITIES as readonly string[]).indexOf(full)
  return i < 0 ? undefined : i
}

/** A 64-bit capability mask as the two 32-bit words capset(2) takes. */
export function capabilityWords(numbers: Iterable<number>): [number, number] {
  let lo = 0
  let hi = 0
  for (const n of numbers) {
    if (n < 32) lo = (lo | (1 << n)) >>> 0
    else hi = (hi | (1 << (n - 32))) >>> 0
  }
  return [lo, hi]
}
