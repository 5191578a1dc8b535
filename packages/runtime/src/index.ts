/**
 * `@ctr/runtime`: containers for Node.js, composed from `@ctr/namespaces`, `@ctr/cgroups`,
 * `@ctr/overlay-image` and `@ctr/registry-client`.
 *
 * This release holds the foundations `run()` builds on: Docker's security defaults
 * (capabilities, a seccomp profile compiled to BPF in TypeScript) and the image config rules
 * (User through the image's /etc/passwd and /etc/group, Env, Entrypoint and Cmd).
 *
 * @example
 * ```ts
 * import { spawn } from '@ctr/namespaces'
 * import { capabilitySets, compileSeccomp, defaultSeccompProfile, mergeEnv, resolveCapabilities, resolveCommand, resolveUser, seccompFilter } from '@ctr/runtime'
 *
 * const caps = resolveCapabilities({ capAdd: ['NET_ADMIN'] })
 * const filter = compileSeccomp(defaultSeccompProfile(), { caps })
 * const user = await resolveUser(rootfs, imageConfig.User)
 * await spawn({
 *   argv: resolveCommand(imageConfig, { cmd: ['sh', '-c', 'id'] }),
 *   env: mergeEnv({ image: imageConfig.Env, user: { DEBUG: '1' }, home: user.home, hostname: 'box' }),
 *   user: { uid: user.uid, gid: user.gid, groups: user.additionalGids },
 *   capabilities: capabilitySets(caps), noNewPrivileges: true, seccomp: seccompFilter(filter),
 *   namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'], hostname: 'box', rootfs: { path: rootfs },
 * })
 * ```
 * @packageDocumentation
 */
export { RuntimeError, type RuntimeErrorCode } from './errors.js'
export { run, type RunOptions, type RunResult } from './run.js'
export { Runtime, create, getDefaultRuntime, type RuntimeOptions, type CreateOptions } from './runtime.js'
export {
  Container,
  type ExitInfo,
  type ContainerEvent,
  type StartOptions,
  type ExecOptions,
  type ExecResult,
  type ProcessInfo,
} from './container/container.js'
export { type ContainerState } from './container/state.js'
export { Network, DEFAULT_NETWORK, parsePublish, type NetworkCreateOptions, type PublishedPort, type NetnsRef } from './network/index.js'
export { type LogEntry } from './container/logs.js'
export { parseImageName, storeRef, type ImageName } from './image/source.js'
export { parseSize, cpusToQuota } from './options/units.js'
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
export {
  resolveUser,
  readRootfsFile,
  parsePasswd,
  parseGroup,
  type ResolvedUser,
  type ResolveUserOptions,
} from './image-config/user.js'
export { mergeEnv, DEFAULT_PATH, type EnvInput, type MergeEnvOptions } from './image-config/env.js'
export { resolveCommand, type CommandOverrides } from './image-config/command.js'
