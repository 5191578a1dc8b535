#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw_syscall.h"

namespace ctr {
namespace {

// The CLONE_VM child runs on this stack until it execs. Its deepest frame is the PATH search
// (a 4 KiB buffer); 256 KiB leaves ample room for the compiler's choices.
constexpr size_t kStackSize = 256 * 1024;
constexpr size_t kGuard = 4096;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset(int f = -1) {
    if (fd >= 0) ::close(fd);
    fd = f;
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

struct Stack {
  void* base = MAP_FAILED;
  ~Stack() {
    if (base != MAP_FAILED) munmap(base, kStackSize + kGuard);
  }
  bool allocate() {
    base = mmap(nullptr, kStackSize + kGuard, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return false;
    mprotect(base, kGuard, PROT_NONE);  // the stack grows down into this and faults
    return true;
  }
  void* lowest() const { return static_cast<char*>(base) + kGuard; }
  void* top() const { return static_cast<char*>(base) + kGuard + kStackSize; }
};

bool force_legacy_clone() {
  const char* v = getenv("CTR_NO_CLONE3");
  return v && *v && strcmp(v, "0") != 0;
}

long pidfd_open(int pid) { return syscall(SYS_pidfd_open, pid, 0); }

void kill_and_reap(int pidfd) {
  if (pidfd < 0) return;
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t info;
  while (waitid((idtype_t)P_PIDFD, pidfd, &info, WEXITED) < 0 && errno == EINTR) {
  }
}

void reap(int pidfd) {
  siginfo_t info;
  while (waitid((idtype_t)P_PIDFD, pidfd, &info, WEXITED) < 0 && errno == EINTR) {
  }
}

std::string replace_pid(const std::string& s, int pid) {
  std::string out;
  std::string p = std::to_string(pid);
  size_t i = 0;
  for (;;) {
    size_t j = s.find("{pid}", i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i).append(p);
    i = j + 5;
  }
  out.append(s, i, std::string::npos);
  return out;
}

// Reads one report, retrying EINTR. Returns bytes read (0 at EOF) or -errno.
long read_report(int fd, ChildReport* r) {
  for (;;) {
    ssize_t n = read(fd, r, sizeof *r);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

// Clones with every signal blocked in this thread: the child inherits the mask and keeps it
// until it has reset every handler, so no handler of the parent's can run on shared memory.
long clone_child(Plan& plan, Stack& stack, bool* into_cgroup, int* pidfd) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);

  uint64_t first_flags = CLONE_VM | CLONE_PIDFD | (plan.two_stage ? 0 : plan.clone_flags);
  long pid = -ENOSYS;
  if (!force_legacy_clone()) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = first_flags | (*into_cgroup ? CLONE_INTO_CGROUP : 0);
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)stack.lowest();
    args.stack_size = kStackSize;
    if (*into_cgroup) args.cgroup = (uint64_t)plan.cgroup_fd;
    pid = ctr_clone3_trampoline(&args, sizeof args, ctr_child_main, &plan);
  }
  if (pid == -ENOSYS || pid == -E2BIG) {
    // Before Linux 5.3 (or under a seccomp policy that hides clone3): glibc's clone, which
    // can still return a pidfd but cannot place the child into a cgroup.
    *into_cgroup = false;
    int p = clone(ctr_child_main, stack.top(), (int)(first_flags | SIGCHLD), &plan, pidfd);
    pid = p < 0 ? -errno : p;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return pid;
}

}  // namespace

// Writes `data` to an existing file (uid_map, cgroup.procs …). Returns 0 or an errno.
static int write_file(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, data.data(), data.size());
  int e = n < 0 ? errno : (size_t)n != data.size() ? EIO : 0;
  close(fd);
  return e;
}

SpawnOutcome spawn_process(Plan& plan) {
  SpawnOutcome out;
  auto parent_error = [&](const char* syscall_name, const std::string& path, int err) {
    out.err = err;
    out.phase = -1;
    out.syscall = syscall_name;
    out.path = path;
    return out;
  };
  // After the child (already reaped) reported a failure, or the report pipe broke.
  auto child_error = [&](long n, const ChildReport& rep) {
    if (n != (long)sizeof rep) return parent_error("read", "spawn report pipe", n < 0 ? (int)-n : EPIPE);
    out.err = rep.err;
    out.phase = rep.phase;
    out.index = rep.index;
    return out;
  };

  int sync_pipe[2], report_pipe[2];
  if (pipe2(sync_pipe, O_CLOEXEC) < 0) return parent_error("pipe2", "", errno);
  Fd sync_read(sync_pipe[0]), sync_write(sync_pipe[1]);
  if (pipe2(report_pipe, O_CLOEXEC) < 0) return parent_error("pipe2", "", errno);
  Fd report_read(report_pipe[0]), report_write(report_pipe[1]);
  plan.sync_fd = sync_read.fd;
  plan.report_fd = report_write.fd;

  Stack stack;
  if (!stack.allocate()) return parent_error("mmap", "child stack", errno);

  // The v1 `tasks` files the child joins itself: opened here, with our credentials, and
  // closed once the child has its copies.
  std::vector<Fd> task_fds(plan.cgroup_tasks.size());
  plan.cgroup_task_fds.clear();
  for (size_t i = 0; i < plan.cgroup_tasks.size(); i++) {
    int fd = open(plan.cgroup_tasks[i].c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return parent_error("open", plan.cgroup_tasks[i], errno);
    task_fds[i].reset(fd);
    plan.cgroup_task_fds.push_back(fd);
  }

  bool into_cgroup = plan.cgroup_fd >= 0;
  int first_pidfd = -1;
  long first = clone_child(plan, stack, &into_cgroup, &first_pidfd);
  if (first < 0) return parent_error("clone3", "", (int)-first);
  Fd first_fd(first_pidfd);
  task_fds.clear();
  // The legacy clone cannot place the child: the parent moves it while it waits.
  if (plan.cgroup_fd >= 0 && !into_cgroup)
    plan.parent_writes.insert(plan.parent_writes.begin(),
                              {plan.cgroup_path + "/cgroup.procs", "{pid}"});
  sync_read.reset();
  report_write.reset();

  int pid = (int)first;
  Fd target_fd;
  ChildReport rep{};
  if (plan.two_stage) {
    long n = read_report(report_read.fd, &rep);
    if (n == (long)sizeof rep && rep.phase == (int32_t)Phase::Pid) {
      pid = rep.index;
      long pfd = pidfd_open(pid);
      reap(first_fd.fd);  // stage 1 exits right after reporting; stage 2 is our child now
      if (pfd < 0) {
        int e = errno;
        kill(pid, SIGKILL);  // our own child (CLONE_PARENT), not yet reaped: the pid is safe
        siginfo_t info;
        waitid(P_PID, pid, &info, WEXITED);
        return parent_error("pidfd_open", std::to_string(pid), e);
      }
      target_fd.reset((int)pfd);
    } else {
      reap(first_fd.fd);
      return child_error(n, rep);
    }
  } else {
    target_fd.reset(first_fd.release());
  }

  // A write of ours can fail because the child already failed (joining a cgroup, say) and
  // exited: after killing and reaping it, so the report pipe is at EOF and cannot block, its
  // report, if any, is the error to give.
  auto fail_after_clone = [&](const char* syscall_name, const std::string& path, int e) {
    kill_and_reap(target_fd.fd);
    long m = read_report(report_read.fd, &rep);
    if (m == (long)sizeof rep) return child_error(m, rep);
    return parent_error(syscall_name, path, e);
  };
  for (const Plan::ParentWrite& w : plan.parent_writes) {
    std::string path = replace_pid(w.path, pid);
    if (int e = write_file(path, replace_pid(w.data, pid))) return fail_after_clone("write", path, e);
  }

  // Opened while the child waits, so it is the namespace the clone made (and not yet gone).
  // A failure only means the namespace is not held: the exit then unmounts it as usual.
  Fd mntns;
  if (plan.hold_mnt_ns) {
    char ns_path[64];
    snprintf(ns_path, sizeof ns_path, "/proc/%d/ns/mnt", pid);
    mntns.reset(open(ns_path, O_RDONLY | O_CLOEXEC));
  }

  char go = 1;
  if (write(sync_write.fd, &go, 1) != 1) return fail_after_clone("write", "spawn sync pipe", errno);

  sync_write.reset();

  long n = read_report(report_read.fd, &rep);
  if (n == 0) {
    // EOF: the report pipe closed on exec. The program runs.
    out.pid = pid;
    out.pidfd = target_fd.release();
    out.mntns_fd = mntns.fd >= 0 ? mntns.release() : -1;
    return out;
  }
  reap(target_fd.fd);
  return child_error(n, rep);
}

}  // namespace ctr
