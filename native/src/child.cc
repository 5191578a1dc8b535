// The child side of spawn: runs between clone and execve.
//
// This process shares the parent's memory (CLONE_VM) and was cloned from a multi-threaded
// process, so everything here is async-signal-safe: raw system calls only (raw_syscall.h), no
// allocation, no locks, no errno, no stdio, no C++ runtime. It reads the plan and writes
// nothing but its own stack. Review it twice.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/filter.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <termios.h>

#include "plan.h"
#include "raw_syscall.h"

namespace ctr {
namespace {

using raw::failed;
using raw::sys;

// The kernel's struct sigaction for rt_sigaction (not glibc's).
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};

[[noreturn]] void exit_now(int code) {
  for (;;) sys(__NR_exit_group, code);
}

// Reports (phase, index, errno) to the parent and exits. errno arrives negated from raw calls.
[[noreturn]] void fail(const Plan* plan, Phase phase, int index, long neg_errno) {
  ChildReport r{(int32_t)phase, (int32_t)index, (int32_t)-neg_errno};
  sys(__NR_write, plan->report_fd, &r, sizeof r);
  exit_now(127);
}

size_t length(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

// Every handler the parent installed (Node's own among them) would run on our shared memory:
// set every signal back to its default before anything can be unblocked. SIGPIPE, which Node
// ignores, must be default again for the program we exec, as for any program a shell starts.
void reset_signal_dispositions() {
  KernelSigaction dfl{};
  dfl.handler = reinterpret_cast<void*>(SIG_DFL);
  for (int sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sys(__NR_rt_sigaction, sig, &dfl, 0, sizeof(uint64_t));
  }
}

// Moves an fd the child needs until exec (report, sync) above every fd it will hand over, so a
// dup2 onto 3, 4, … cannot clobber it. The copy keeps O_CLOEXEC.
long move_high(int fd, int floor) { return sys(__NR_fcntl, fd, F_DUPFD_CLOEXEC, floor); }

// Turns statfs flags into the mount flags a bind remount must repeat: a remount that omits
// nosuid/nodev/noexec on a locked mount fails with EPERM.
unsigned long mount_flags_of(const struct statfs& st) {
  unsigned long f = 0;
  if (st.f_flags & ST_RDONLY) f |= MS_RDONLY;
  if (st.f_flags & ST_NOSUID) f |= MS_NOSUID;
  if (st.f_flags & ST_NODEV) f |= MS_NODEV;
  if (st.f_flags & ST_NOEXEC) f |= MS_NOEXEC;
  if (st.f_flags & ST_NOATIME) f |= MS_NOATIME;
  if (st.f_flags & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (st.f_flags & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

// The new root, opened by a RootOpen step (O_PATH); -1 before. Only this process's stack and
// this variable are written: the child runs on its own stack and this is set by it alone.
struct RootCtx {
  long fd = -1;
};

// openat2(root, path, O_PATH, RESOLVE_IN_ROOT): `path` (absolute or not) is resolved as if the
// new root were `/` — `..` stops there and every symbolic link, absolute or relative, is
// followed inside it — and never through /proc magic links.
long open_in_root(const RootCtx& root, const char* path, bool directory) {
  if (root.fd < 0) return -EBADF;
  struct open_how how;
  char* h = reinterpret_cast<char*>(&how);
  for (unsigned i = 0; i < sizeof how; i++) h[i] = 0;
  how.flags = O_PATH | O_CLOEXEC | (directory ? O_DIRECTORY : 0);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return sys(__NR_openat2, root.fd, path, &how, sizeof how);
}

// Splits an in-root path into its parent (opened in the root) and its last component, copied
// into `name` (no allocation: a caller's stack buffer). "." and ".." are refused as names.
long open_parent(const RootCtx& root, const char* path, char (&name)[256]) {
  size_t n = length(path);
  while (n > 1 && path[n - 1] == '/') n--;  // "a/b/" names b
  size_t start = n;
  while (start > 0 && path[start - 1] != '/') start--;
  size_t len = n - start;
  if (len == 0 || len >= sizeof name) return -EINVAL;
  for (size_t i = 0; i < len; i++) name[i] = path[start + i];
  name[len] = 0;
  if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) return -EINVAL;
  char dir[4096];
  if (start >= sizeof dir) return -ENAMETOOLONG;
  for (size_t i = 0; i < start; i++) dir[i] = path[i];
  dir[start] = 0;
  if (start == 0) {
    dir[0] = '.';
    dir[1] = 0;
  }
  return open_in_root(root, dir, true);
}

// "/proc/self/fd/<fd>" into buf: mount(2) takes a path, and this one names exactly the inode
// openat2 found (the host's /proc, still mounted before pivot_root).
const char* fd_path(long fd, char (&buf)[32]) {
  const char prefix[] = "/proc/self/fd/";
  size_t n = 0;
  for (; prefix[n]; n++) buf[n] = prefix[n];
  char digits[20];
  size_t d = 0;
  unsigned long v = (unsigned long)fd;
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && d < sizeof digits);
  while (d) buf[n++] = digits[--d];
  buf[n] = 0;
  return buf;
}

long run_step(const Step& s, RootCtx& root) {
  switch (s.op) {
    case Op::Mount:
      return sys(__NR_mount, s.s[0], s.s[1], s.s[2], (unsigned long)s.n[0], s.s[3]);
    case Op::BindRemount: {
      struct statfs st;
      long r = sys(__NR_statfs, s.s[1], &st);
      if (failed(r)) return r;
      unsigned long flags = MS_REMOUNT | MS_BIND | mount_flags_of(st) | (unsigned long)s.n[0];
      return sys(__NR_mount, 0, s.s[1], 0, flags, 0);
    }
    case Op::Mkdir: {
      long r = sys(__NR_mkdirat, AT_FDCWD, s.s[0], s.n[0]);
      if (r == -EEXIST) {
        struct stat st;
        long sr = sys(__NR_newfstatat, AT_FDCWD, s.s[0], &st, 0);
        if (!failed(sr) && S_ISDIR(st.st_mode)) return 0;
      }
      return r;
    }
    case Op::Mknod: {
      // A regular file made as a bind-mount target may already exist in the image (the
      // parent cannot always see the root it is mounted on): that is fine.
      long r = sys(__NR_mknodat, AT_FDCWD, s.s[0], s.n[0], s.n[1]);
      if (r == -EEXIST && (s.n[0] & S_IFMT) == S_IFREG) return 0;
      return r;
    }
    case Op::Symlink: {
      long r = sys(__NR_symlinkat, s.s[0], AT_FDCWD, s.s[1]);
      return r == -EEXIST ? 0 : r;
    }
    case Op::PivotRoot: {
      // pivot_root(".", ".") stacks the old root under the new one; detaching "." then
      // removes it without needing a directory to put it in (as runc does).
      long r = sys(__NR_chdir, s.s[0]);
      if (failed(r)) return r;
      r = sys(__NR_pivot_root, ".", ".");
      if (failed(r)) return r;
      r = sys(__NR_umount2, ".", MNT_DETACH);
      if (failed(r)) return r;
      return sys(__NR_chdir, "/");
    }
    case Op::Chdir:
      return sys(__NR_chdir, s.s[0]);
    case Op::SetHostname:
      return sys(__NR_sethostname, s.s[0], length(s.s[0]));
    case Op::SetDomainname:
      return sys(__NR_setdomainname, s.s[0], length(s.s[0]));
    case Op::SetRlimit: {
      struct rlimit64 {
        uint64_t cur, max;
      } lim{(uint64_t)s.n[1], (uint64_t)s.n[2]};
      return sys(__NR_prlimit64, 0, s.n[0], &lim, 0);
    }
    case Op::SetGroups:
      return sys(__NR_setgroups, s.blob_len / 4, s.blob);
    case Op::SetResgid:
      return sys(__NR_setresgid, s.n[0], s.n[0], s.n[0]);
    case Op::SetResuid:
      return sys(__NR_setresuid, s.n[0], s.n[0], s.n[0]);
    case Op::KeepCaps:
      return sys(__NR_prctl, PR_SET_KEEPCAPS, s.n[0], 0, 0, 0);
    case Op::CapBsetDrop:
      return sys(__NR_prctl, PR_CAPBSET_DROP, s.n[0], 0, 0, 0);
    case Op::CapSet: {
      const uint32_t* v = static_cast<const uint32_t*>(s.blob);
      struct __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      struct __user_cap_data_struct data[2] = {{v[0], v[2], v[4]}, {v[1], v[3], v[5]}};
      return sys(__NR_capset, &hdr, data);
    }
    case Op::AmbientRaise:
      return sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, s.n[0], 0, 0);
    case Op::NoNewPrivs:
      return sys(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case Op::Seccomp: {
      struct sock_fprog prog{(unsigned short)(s.blob_len / sizeof(struct sock_filter)),
                             (struct sock_filter*)s.blob};
      return sys(__NR_seccomp, SECCOMP_SET_MODE_FILTER, s.n[0], &prog);
    }
    case Op::LinkUp: {
      // SIOCGIFFLAGS / SIOCSIFFLAGS on a throwaway datagram socket: the interface name was
      // checked to fit IFNAMSIZ when the plan was parsed, and is copied by hand (no libc).
      struct ifreq ifr;
      char* dst = reinterpret_cast<char*>(&ifr);
      for (unsigned i = 0; i < sizeof ifr; i++) dst[i] = 0;
      for (unsigned i = 0; s.s[0][i] && i < IFNAMSIZ - 1; i++) ifr.ifr_name[i] = s.s[0][i];
      long fd = sys(__NR_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (failed(fd)) return fd;
      long r = sys(__NR_ioctl, fd, SIOCGIFFLAGS, &ifr);
      if (!failed(r)) {
        ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
        r = sys(__NR_ioctl, fd, SIOCSIFFLAGS, &ifr);
      }
      sys(__NR_close, fd);
      return r;
    }
    case Op::Setsid:
      return sys(__NR_setsid);
    case Op::SetCtty:
      return sys(__NR_ioctl, s.n[0], TIOCSCTTY, 0);
    case Op::Umask:
      sys(__NR_umask, s.n[0]);
      return 0;
    case Op::Umount:
      return sys(__NR_umount2, s.s[0], s.n[0]);
    case Op::WriteFile: {
      long fd = sys(__NR_openat, AT_FDCWD, s.s[0], O_WRONLY | O_CLOEXEC);
      if (failed(fd)) return fd;
      size_t len = length(s.s[1]);
      long r = sys(__NR_write, fd, s.s[1], len);
      sys(__NR_close, fd);
      if (failed(r)) return r;
      return (size_t)r == len ? 0 : -EIO;
    }
    case Op::MaskPath: {
      struct stat st;
      long r = sys(__NR_newfstatat, AT_FDCWD, s.s[0], &st, AT_SYMLINK_NOFOLLOW);
      if (r == -ENOENT) return 0;
      if (failed(r)) return r;
      if (S_ISDIR(st.st_mode))
        return sys(__NR_mount, "tmpfs", s.s[0], "tmpfs", MS_RDONLY, "size=0k");
      return sys(__NR_mount, "/dev/null", s.s[0], 0, MS_BIND, 0);
    }
    case Op::ReadonlyPath: {
      long r = sys(__NR_mount, s.s[0], s.s[0], 0, MS_BIND | MS_REC, 0);
      if (r == -ENOENT) return 0;
      if (failed(r)) return r;
      struct statfs st;
      r = sys(__NR_statfs, s.s[0], &st);
      if (failed(r)) return r;
      return sys(__NR_mount, 0, s.s[0], 0,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | mount_flags_of(st), 0);
    }
    case Op::RootOpen: {
      long fd = sys(__NR_openat, AT_FDCWD, s.s[0], O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
      if (failed(fd)) return fd;
      if (root.fd >= 0) sys(__NR_close, root.fd);
      root.fd = fd;
      return 0;
    }
    case Op::MkdirIn: {
      char name[256];
      long dir = open_parent(root, s.s[0], name);
      if (failed(dir)) return dir;
      long r = sys(__NR_mkdirat, dir, name, s.n[0]);
      if (r == -EEXIST) {
        // A directory, or a link that leads to one inside the root, will do.
        struct stat st;
        long sr = sys(__NR_newfstatat, dir, name, &st, AT_SYMLINK_NOFOLLOW);
        if (!failed(sr) && S_ISDIR(st.st_mode)) {
          r = 0;
        } else if (!failed(sr) && S_ISLNK(st.st_mode)) {
          long t = open_in_root(root, s.s[0], true);
          if (!failed(t)) {
            sys(__NR_close, t);
            r = 0;
          }
        }
      }
      sys(__NR_close, dir);
      return r;
    }
    case Op::MknodIn: {
      char name[256];
      long dir = open_parent(root, s.s[0], name);
      if (failed(dir)) return dir;
      long r = sys(__NR_mknodat, dir, name, s.n[0], s.n[1]);
      // A mount target already in the image — a file, or a link the mount follows inside
      // the root — is fine.
      if (r == -EEXIST && (s.n[0] & S_IFMT) == S_IFREG) r = 0;
      sys(__NR_close, dir);
      return r;
    }
    case Op::SymlinkIn: {
      char name[256];
      long dir = open_parent(root, s.s[1], name);
      if (failed(dir)) return dir;
      long r = sys(__NR_symlinkat, s.s[0], dir, name);
      sys(__NR_close, dir);
      return r == -EEXIST ? 0 : r;
    }
    case Op::MountIn: {
      long target = open_in_root(root, s.s[1], false);
      if (failed(target)) return target;
      char path[32];
      long r = sys(__NR_mount, s.s[0], fd_path(target, path), s.s[2], (unsigned long)s.n[0], s.s[3]);
      sys(__NR_close, target);
      return r;
    }
    case Op::BindRemountIn: {
      // Opened after the bind mount: the fd is on the mount itself, which the remount needs.
      long target = open_in_root(root, s.s[1], false);
      if (failed(target)) return target;
      struct statfs st;
      long r = sys(__NR_fstatfs, target, &st);
      if (!failed(r)) {
        char path[32];
        unsigned long flags = MS_REMOUNT | MS_BIND | mount_flags_of(st) | (unsigned long)s.n[0];
        r = sys(__NR_mount, 0, fd_path(target, path), 0, flags, 0);
      }
      sys(__NR_close, target);
      return r;
    }
    case Op::Count:
      break;
  }
  return -EINVAL;
}

// execve, with a PATH search like execvpe when the program name has no '/'.
long exec_program(const Plan* plan) {
  const char* path = plan->exec_path;
  char* const* argv = const_cast<char* const*>(plan->argv.data());
  char* const* envp = const_cast<char* const*>(plan->envp.data());
  bool has_slash = false;
  for (const char* p = path; *p; p++) has_slash |= *p == '/';
  if (has_slash || !plan->search_path) return sys(__NR_execve, path, argv, envp);

  char buf[4096];
  size_t name_len = length(path);
  bool saw_eacces = false;
  const char* dir = plan->search_path;
  for (;;) {
    const char* end = dir;
    while (*end && *end != ':') end++;
    size_t dir_len = end - dir;
    if (dir_len + 1 + name_len + 1 <= sizeof buf) {
      size_t n = 0;
      if (dir_len == 0) {
        buf[n++] = '.';
      } else {
        for (size_t i = 0; i < dir_len; i++) buf[n++] = dir[i];
      }
      buf[n++] = '/';
      for (size_t i = 0; i <= name_len; i++) buf[n++] = path[i];
      long r = sys(__NR_execve, buf, argv, envp);
      if (r == -EACCES) saw_eacces = true;
      else if (r != -ENOENT && r != -ENOTDIR && r != -ESTALE && r != -ENAMETOOLONG &&
               r != -ELOOP)
        return r;
    }
    if (!*end) break;
    dir = end + 1;
  }
  return saw_eacces ? -EACCES : -ENOENT;
}

int highest_target_fd(const Plan* plan) {
  int hi = 2;
  for (const FdMove& m : plan->fds)
    if (m.target > hi) hi = m.target;
  return hi;
}

// Stage 1 of a two-stage spawn: joined namespaces that only take effect for children (pid,
// time) are now ours; clone the real child as our parent's child and tell the parent its pid.
void clone_stage_two(const Plan* plan) {
  // A plain fork-style clone: stage 2 gets its own copy of memory, so it may mark itself
  // non-dumpable (it is about to live in a namespace somebody else's processes share).
  long flags = (long)(plan->clone_flags | CLONE_PARENT | SIGCHLD);
  long pid = sys(__NR_clone, flags, 0, 0, 0, 0);
  if (failed(pid)) fail(plan, Phase::Clone, 0, pid);
  if (pid == 0) return;  // stage 2 continues in ctr_child_main
  ChildReport r{(int32_t)Phase::Pid, (int32_t)pid, 0};
  sys(__NR_write, plan->report_fd, &r, sizeof r);
  exit_now(0);
}

}  // namespace

extern "C" int ctr_child_main(void* arg) {
  const Plan* plan = static_cast<const Plan*>(arg);

  reset_signal_dispositions();
  sys(__NR_prctl, PR_SET_PDEATHSIG, plan->pdeathsig, 0, 0, 0);

  // Join the v1 cgroups first: "0" in `tasks` moves this (only) thread without the global
  // rwsem a pid written to cgroup.procs takes. Before any setns, so a second stage cloned in a
  // joined pid namespace is born inside them, and before the sync wait, so it overlaps the
  // parent's own writes.
  for (size_t i = 0; i < plan->cgroup_task_fds.size(); i++) {
    long r = sys(__NR_write, plan->cgroup_task_fds[i], "0", 1);
    if (failed(r)) fail(plan, Phase::Cgroup, (int)i, r);
    if (r != 1) fail(plan, Phase::Cgroup, (int)i, -EIO);
  }

  for (size_t i = 0; i < plan->joins.size(); i++) {
    long r = sys(__NR_setns, plan->joins[i].fd, plan->joins[i].nstype);
    if (failed(r)) fail(plan, Phase::Join, (int)i, r);
  }

  if (plan->two_stage) {
    clone_stage_two(plan);
    // Stage 2: its memory is its own, so keep other processes in the joined namespaces from
    // ptrace-ing it while it still holds our privileges.
    sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    sys(__NR_prctl, PR_SET_PDEATHSIG, plan->pdeathsig, 0, 0, 0);
  }

  // Wait for the parent (uid/gid maps, cgroup placement). EOF: the parent gave up or died.
  {
    char go = 0;
    long r;
    do r = sys(__NR_read, plan->sync_fd, &go, 1);
    while (r == -EINTR);
    if (r != 1) exit_now(126);
  }

  // From here on the plan's own numbering of fds applies; keep the report fd out of the way.
  int floor = highest_target_fd(plan) + 1;
  long report = move_high(plan->report_fd, floor);
  if (failed(report)) fail(plan, Phase::Setup, 0, report);
  // The original report fd may be a dup2 target or fall to close_range: from here on failures
  // go through the high copy.
  auto report_to = [&](Phase phase, int index, long neg) {
    ChildReport rec{(int32_t)phase, (int32_t)index, (int32_t)-neg};
    sys(__NR_write, report, &rec, sizeof rec);
    exit_now(127);
  };

  // fds: first every source to a temporary above all targets, then onto its target; a source
  // that is also another move's target cannot be overwritten before it is copied.
  long temps[64];
  size_t nfds = plan->fds.size();
  if (nfds > 64) report_to(Phase::Fds, 64, -EMFILE);
  for (size_t i = 0; i < nfds; i++) {
    long t = sys(__NR_fcntl, plan->fds[i].source, F_DUPFD_CLOEXEC, floor);
    if (failed(t)) report_to(Phase::Fds, (int)i, t);
    temps[i] = t;
  }
  for (size_t i = 0; i < nfds; i++) {
    long r = sys(__NR_dup3, temps[i], plan->fds[i].target, 0);
    if (failed(r)) report_to(Phase::Fds, (int)i, r);
  }
  // Everything else goes: fds the parent leaked without O_CLOEXEC, our temporaries, the sync
  // pipe, the cgroup `tasks` files. Only the report fd stays (it closes on exec).
  {
    long r = 0;
    if (report > floor) r = sys(__NR_close_range, floor, report - 1, 0);
    if (!failed(r)) r = sys(__NR_close_range, report + 1, ~0U, 0);
    if (r == -ENOSYS) {
      struct rlimit64 {
        uint64_t cur, max;
      } lim{};
      sys(__NR_prlimit64, 0, RLIMIT_NOFILE, 0, &lim);
      for (uint64_t fd = floor; fd < lim.cur && fd < (1u << 20); fd++)
        if ((long)fd != report) sys(__NR_close, fd);
    } else if (failed(r)) {
      report_to(Phase::Setup, 1, r);
    }
  }
  // 0, 1 and 2 are the plan's business: TypeScript always names them (inherited, piped, or
  // /dev/null when ignored), so they are never the parent's by accident.

  RootCtx root;
  for (size_t i = 0; i < plan->steps.size(); i++) {
    long r = run_step(plan->steps[i], root);
    if (failed(r)) report_to(Phase::Step, (int)i, r);
  }
  if (root.fd >= 0) sys(__NR_close, root.fd);

  // Credentials may have changed, which clears the parent-death signal: set it again.
  sys(__NR_prctl, PR_SET_PDEATHSIG, plan->pdeathsig, 0, 0, 0);
  uint64_t empty = 0;
  sys(__NR_rt_sigprocmask, SIG_SETMASK, &empty, 0, sizeof empty);

  long r = exec_program(plan);
  report_to(Phase::Exec, 0, r);
  return 127;
}

}  // namespace ctr
