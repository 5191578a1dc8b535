/**
 * Syscall numbers and the audit architecture constants a seccomp filter checks
 * (`seccomp_data.arch`, `seccomp_data.nr`), for the architectures ctr compiles filters for.
 */
import { AARCH64_SYSCALLS, X86_64_SYSCALLS } from './syscall-tables.js'

/** Architectures {@link compileSeccomp} can build a filter for. */
export type SeccompArch = 'x86_64' | 'aarch64'

/** `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`. */
export const AUDIT_ARCH_X86_64 = 0xc000003e
/** `AUDIT_ARCH_AARCH64`: `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`. */
export const AUDIT_ARCH_AARCH64 = 0xc00000b7
/** Bit 30 of the syscall number marks the x32 ABI on x86_64 (`__X32_SYSCALL_BIT`). */
export const X32_SYSCALL_BIT = 0x40000000

export interface ArchInfo {
  /** Audit architecture constant (`seccomp_data.arch`). */
  audit: number
  /** The name libseccomp and Docker's profiles use in `includes.arches` / `excludes.arches`. */
  libseccompName: string
  /** The `SCMP_ARCH_*` name of profiles' `architectures` / `archMap`. */
  scmpName: string
  /** Name → number. */
  syscalls: Readonly<Record<string, number>>
}

export const ARCHES: Readonly<Record<SeccompArch, ArchInfo>> = Object.freeze({
  x86_64: { audit: AUDIT_ARCH_X86_64, libseccompName: 'amd64', scmpName: 'SCMP_ARCH_X86_64', syscalls: X86_64_SYSCALLS },
  aarch64: { audit: AUDIT_ARCH_AARCH64, libseccompName: 'arm64', scmpName: 'SCMP_ARCH_AARCH64', syscalls: AARCH64_SYSCALLS },
})

/**
 * The architecture of this host as {@link SeccompArch}, or undefined when ctr cannot build
 * filters for it.
 */
export function hostArch(): SeccompArch | undefined {
  if (process.arch === 'x64') return 'x86_64'
  if (process.arch === 'arm64') return 'aarch64'
  return undefined
}

/**
 * The number of a syscall on an architecture, or undefined when that architecture has no
 * such syscall (for example `open` on aarch64).
 *
 * @example
 * ```ts
 * syscallNumber('x86_64', 'openat') // 257
 * syscallNumber('aarch64', 'open')  // undefined
 * ```
 */
export function syscallNumber(arch: SeccompArch, name: string): number | undefined {
  const table = ARCHES[arch].syscalls
  return Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined
}

/** The name of a syscall number on an architecture (the reverse of {@link syscallNumber}). */
export function syscallName(arch: SeccompArch, nr: number): string | undefined {
  const table = ARCHES[arch].syscalls
  for (const name in table) if (table[name] === nr) return name
  return undefined
}
