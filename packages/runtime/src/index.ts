/**
 * `@ctr/runtime`: containers for Node.js, composed from `@ctr/namespaces`, `@ctr/cgroups`,
 * `@ctr/overlay-image` and `@ctr/registry-client`.
 *
 * This release holds the foundations `run()` builds on: Docker's security defaults
 * (capabilities, a seccomp profile compiled to BPF in TypeScript).
 *
 * @example
 * ```ts
 * import { compileSeccomp, defaultSeccompProfile, resolveCapabilities, seccompFilter, capabilitySets } from '@ctr/runtime'
 *
 * const caps = resolveCapabilities({ capAdd: ['NET_ADMIN'] })
 * const filter = compileSeccomp(defaultSeccompProfile(), { caps })
 * await spawn({ argv: ['sh'], capabilities: capabilitySets(caps), noNewPrivileges: true, seccomp: seccompFilter(filter) })
 * ```
 * @packageDocumentation
 */
export { RuntimeError, type RuntimeErrorCode } from './errors.js'
export {
  DEFAULT_CAPABILITIES,
  resolveCapabilities,
  capabilitySets,
  allCapabilities,
  normalizeCapabilityName,
  type CapabilityOptions,
} from './security/capabilities.js'
export {
  parseSeccompProfile,
  seccompProfileSchema,
  SECCOMP_ACTIONS,
  SECCOMP_OPERATORS,
  SECCOMP_FLAGS,
  type SeccompProfile,
  type ParsedSeccompProfile,
  type SeccompSyscallRule,
  type SeccompArg,
  type SeccompAction,
  type SeccompOperator,
  type SeccompFlag,
} from './security/seccomp/profile.js'
export { defaultSeccompProfile, ALLOWED_SOCKET_FAMILIES, CLONE_NAMESPACE_FLAGS } from './security/seccomp/default-profile.js'
export {
  compileSeccomp,
  seccompStep,
  seccompFilter,
  SECCOMP_RET,
  SECCOMP_FILTER_FLAG,
  type CompileSeccompOptions,
  type CompiledSeccomp,
} from './security/seccomp/compile.js'
export {
  syscallNumber,
  syscallName,
  hostArch,
  ARCHES,
  AUDIT_ARCH_X86_64,
  AUDIT_ARCH_AARCH64,
  X32_SYSCALL_BIT,
  type SeccompArch,
  type ArchInfo,
} from './security/seccomp/syscalls.js'
export { BPF, BPF_MAXINSNS, decodeFilters, encodeFilters, type SockFilter } from './security/seccomp/bpf.js'
