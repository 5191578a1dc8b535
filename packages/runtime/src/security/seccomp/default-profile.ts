/**
 * ctr's default seccomp profile: an allow-list modelled on Docker's default profile
 * (moby/profiles, `seccomp/default.json` and `default_linux.go`). Everything not listed
 * fails with EPERM. Syscalls that need a capability are allowed only when the container has
 * it (`includes.caps`), `clone` may not create namespaces without CAP_SYS_ADMIN, `clone3`
 * fails with ENOSYS without it (its flags sit behind a pointer seccomp cannot read, so glibc
 * and others fall back to `clone`, which the filter can check), `socket` is limited to the
 * address families Docker allows (no AF_VSOCK, no AF_ALG), and `personality` to the values
 * programs use.
 */
import type { SeccompProfile, SeccompSyscallRule } from './profile.js'

const EPERM = 1
const ENOSYS = 38

/** Syscalls every container may make. */
const ALLOWED = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset',
  'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres',
  'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64',
  'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2',
  'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group',
  'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate', 'fanotify_mark', 'fchdir',
  'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync',
  'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr', 'fstat', 'fstat64',
  'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64', 'futex', 'futex_requeue',
  'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake', 'futimesat', 'getcpu', 'getcwd',
  'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32',
  'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid',
  'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit',
  'get_robust_list', 'getrusage', 'getsid', 'getsockname', 'getsockopt', 'get_thread_area', 'gettid',
  'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'getxattrat', 'inotify_add_watch', 'inotify_init',
  'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy', 'io_getevents',
  'io_pgetevents', 'io_pgetevents_time64', 'ioprio_get', 'ioprio_set', 'io_setup', 'io_submit', 'ipc',
  'kill', 'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32',
  'lgetxattr', 'link', 'linkat', 'listen', 'listmount', 'listxattr', 'listxattrat', 'llistxattr',
  '_llseek', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise', 'map_shadow_stack',
  'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat',
  'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open',
  'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink',
  'mremap', 'mseal', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap',
  'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause',
  'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll',
  'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease',
  'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink',
  'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg',
  'remap_file_pages', 'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2',
  'restart_syscall', 'riscv_hwprobe', 'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending',
  'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait',
  'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_getaffinity', 'sched_getattr',
  'sched_getparam', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_getscheduler',
  'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity', 'sched_setattr',
  'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget',
  'semop', 'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg',
  'sendto', 'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups',
  'setgroups32', 'setitimer', 'setpgid', 'setpriority', 'setregid', 'setregid32', 'setresgid',
  'setresgid32', 'setresuid', 'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list',
  'setsid', 'setsockopt', 'set_thread_area', 'set_tid_address', 'setuid', 'setuid32', 'setxattr',
  'setxattrat', 'shmat', 'shmctl', 'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd',
  'signalfd4', 'sigprocmask', 'sigreturn', 'socketcall', 'socketpair', 'splice', 'stat', 'stat64',
  'statfs', 'statfs64', 'statmount', 'statx', 'symlink', 'symlinkat', 'sync', 'sync_file_range',
  'syncfs', 'sysinfo', 'tee', 'tgkill', 'time', 'timer_create', 'timer_delete', 'timer_getoverrun',
  'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64', 'timerfd_create',
  'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times', 'tkill',
  'truncate', 'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'uretprobe', 'utime',
  'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write',
  'writev',
]

/**
 * Address families `socket(2)` may create: every family of linux/socket.h except the removed
 * ones and AF_ALG (the kernel crypto API) and AF_VSOCK (host/guest sockets, global across
 * network namespaces on most kernels), as Docker decides.
 */
export const ALLOWED_SOCKET_FAMILIES: readonly number[] = [
  1 /* AF_UNIX */, 2 /* AF_INET */, 3 /* AF_AX25 */, 4 /* AF_IPX */, 5 /* AF_APPLETALK */,
  6 /* AF_NETROM */, 7 /* AF_BRIDGE */, 8 /* AF_ATMPVC */, 9 /* AF_X25 */, 10 /* AF_INET6 */,
  11 /* AF_ROSE */, 13 /* AF_NETBEUI */, 14 /* AF_SECURITY */, 15 /* AF_KEY */, 16 /* AF_NETLINK */,
  17 /* AF_PACKET */, 18 /* AF_ASH */, 21 /* AF_RDS */, 22 /* AF_SNA */, 24 /* AF_PPPOX */,
  26 /* AF_LLC */, 27 /* AF_IB */, 28 /* AF_MPLS */, 29 /* AF_CAN */, 30 /* AF_TIPC */,
  31 /* AF_BLUETOOTH */, 32 /* AF_IUCV */, 33 /* AF_RXRPC */, 35 /* AF_PHONET */, 36 /* AF_IEEE802154 */,
  39 /* AF_NFC */, 41 /* AF_KCM */, 42 /* AF_QIPCRTR */, 43 /* AF_SMC */, 44 /* AF_XDP */, 45 /* AF_MCTP */,
]

/**
 * One `socket` rule per run of families: the leading run from AF_UNIX becomes `domain < end`
 * (AF_UNSPEC, 0, cannot be created anyway), every other family an equality.
 */
function socketRules(): SeccompSyscallRule[] {
  const families = [...ALLOWED_SOCKET_FAMILIES].sort((a, b) => a - b)
  const rules: SeccompSyscallRule[] = []
  let i = 0
  if (families[0] === 1) {
    while (i + 1 < families.length && families[i + 1] === families[i]! + 1) i++
    rules.push({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: families[i]! + 1, op: 'SCMP_CMP_LT' }] })
    i++
  }
  for (; i < families.length; i++) {
    rules.push({ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: families[i]!, op: 'SCMP_CMP_EQ' }] })
  }
  return rules
}

/** CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000

const allow = (names: string[], extra: Omit<SeccompSyscallRule, 'names' | 'action'> = {}): SeccompSyscallRule => ({
  names,
  action: 'SCMP_ACT_ALLOW',
  ...extra,
})
const withCap = (cap: string, names: string[]): SeccompSyscallRule => allow(names, { includes: { caps: [cap] } })

function build(): SeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      { architecture: 'SCMP_ARCH_MIPS64', subArchitectures: ['SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64N32'] },
      { architecture: 'SCMP_ARCH_MIPS64N32', subArchitectures: ['SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64'] },
      { architecture: 'SCMP_ARCH_MIPSEL64', subArchitectures: ['SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'] },
      { architecture: 'SCMP_ARCH_MIPSEL64N32', subArchitectures: ['SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64'] },
      { architecture: 'SCMP_ARCH_S390X', subArchitectures: ['SCMP_ARCH_S390'] },
      { architecture: 'SCMP_ARCH_RISCV64', subArchitectures: null },
      { architecture: 'SCMP_ARCH_LOONGARCH64', subArchitectures: null },
    ],
    syscalls: [
      allow([...ALLOWED]),
      // Before 4.8, ptrace could bypass seccomp: only allowed unconditionally from 4.8 on.
      allow(['process_vm_readv', 'process_vm_writev', 'ptrace'], { includes: { minKernel: '4.8' } }),
      ...socketRules(),
      ...[0x0, 0x0008, 0x20000, 0x20008, 0xffffffff].map((v) =>
        allow(['personality'], { args: [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }] }),
      ),
      allow(['sync_file_range2', 'swapcontext'], { includes: { arches: ['ppc64le'] } }),
      allow(['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'], {
        includes: { arches: ['arm', 'arm64'] },
      }),
      allow(['arch_prctl'], { includes: { arches: ['amd64', 'x32'] } }),
      allow(['modify_ldt'], { includes: { arches: ['amd64', 'x32', 'x86'] } }),
      allow(['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], { includes: { arches: ['s390', 's390x'] } }),
      allow(['riscv_flush_icache'], { includes: { arches: ['riscv64'] } }),
      withCap('CAP_DAC_READ_SEARCH', ['open_by_handle_at']),
      withCap('CAP_SYS_ADMIN', [
        'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie',
        'lsm_get_self_attr', 'lsm_list_modules', 'lsm_set_self_attr', 'mount', 'mount_setattr', 'move_mount',
        'open_tree', 'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname', 'sethostname', 'setns',
        'syslog', 'umount', 'umount2', 'unshare',
      ]),
      // Without CAP_SYS_ADMIN, clone may not create namespaces (flags are argument 0, but 1 on s390).
      allow(['clone'], {
        args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
        excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
      }),
      allow(['clone'], {
        args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
        comment: 's390 parameter ordering for clone is different',
        includes: { arches: ['s390', 's390x'] },
        excludes: { caps: ['CAP_SYS_ADMIN'] },
      }),
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, excludes: { caps: ['CAP_SYS_ADMIN'] } },
      withCap('CAP_SYS_BOOT', ['reboot']),
      withCap('CAP_SYS_CHROOT', ['chroot']),
      withCap('CAP_SYS_MODULE', ['delete_module', 'init_module', 'finit_module']),
      withCap('CAP_SYS_PACCT', ['acct']),
      withCap('CAP_SYS_PTRACE', ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace']),
      withCap('CAP_SYS_RAWIO', ['iopl', 'ioperm']),
      withCap('CAP_SYS_TIME', ['settimeofday', 'stime', 'clock_settime', 'clock_settime64']),
      withCap('CAP_SYS_TTY_CONFIG', ['vhangup']),
      withCap('CAP_SYS_NICE', ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node']),
      withCap('CAP_SYSLOG', ['syslog']),
      withCap('CAP_BPF', ['bpf']),
      withCap('CAP_PERFMON', ['perf_event_open']),
    ],
  }
}

/**
 * A fresh copy of ctr's default seccomp profile (modify it freely), modelled on Docker's
 * default: syscalls outside the allow-list fail with EPERM; those that need a capability
 * are allowed when the container has it.
 *
 * @example
 * ```ts
 * import { defaultSeccompProfile, compileSeccomp, DEFAULT_CAPABILITIES } from '@ctr/runtime'
 * const profile = defaultSeccompProfile()
 * profile.syscalls!.push({ names: ['userfaultfd'], action: 'SCMP_ACT_ALLOW' })
 * const filter = compileSeccomp(profile, { caps: [...DEFAULT_CAPABILITIES] })
 * ```
 */
export function defaultSeccompProfile(): SeccompProfile {
  return build()
}
