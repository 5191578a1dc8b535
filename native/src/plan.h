// The spawn plan as the child reads it: plain structs, every pointer resolved, built by the
// parent before clone and never written after. The child only reads it.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <deque>
#include <string>
#include <vector>

namespace ctr {

// One operation the child performs between clone and exec. The TypeScript side builds these;
// see native/lib/plan.ts for the operand layout of each op.
enum class Op : int32_t {
  Mount = 0,          // s0 source|null, s1 target, s2 fstype|null, s3 data|null, n0 flags
  BindRemount = 1,    // s1 target, n0 flags added to the mount's current ones (read-only binds)
  Mkdir = 2,          // s0 path, n0 mode; an existing directory is fine
  Mknod = 3,          // s0 path, n0 mode, n1 dev; an existing regular file is fine for S_IFREG
  Symlink = 4,        // s0 target, s1 link path; an existing link is fine
  PivotRoot = 5,      // s0 new root; the old root is detached
  Chdir = 6,          // s0 path
  SetHostname = 7,    // s0 name
  SetDomainname = 8,  // s0 name
  SetRlimit = 9,      // n0 resource, n1 soft, n2 hard (-1 = unlimited)
  SetGroups = 10,     // blob: uint32 gids
  SetResgid = 11,     // n0 gid
  SetResuid = 12,     // n0 uid
  KeepCaps = 13,      // n0 0|1
  CapBsetDrop = 14,   // n0 capability number
  CapSet = 15,        // blob: 6 × uint32 — effective, permitted, inheritable (low, high)
  AmbientRaise = 16,  // n0 capability number
  NoNewPrivs = 17,    //
  Seccomp = 18,       // blob: struct sock_filter[], n0 seccomp flags
  Setsid = 19,        //
  SetCtty = 20,       // n0 fd
  Umask = 21,         // n0 mask
  Umount = 22,        // s0 target, n0 flags
  WriteFile = 23,     // s0 path, s1 content
  MaskPath = 24,      // s0 path: bind /dev/null over a file, or a read-only tmpfs over a dir;
                      // a missing path is fine (runc's masked paths)
  ReadonlyPath = 25,  // s0 path: bind it onto itself read-only; a missing path is fine
  LinkUp = 26,        // s0 interface name: set IFF_UP (loopback in a new network namespace)
  // Paths inside the new root, before pivot_root. The root is opened once (RootOpen); every
  // in-root path is relative to it and resolved with openat2(RESOLVE_IN_ROOT), so a symbolic
  // link in the image (`/etc -> /`) is followed as if the root were `/` and can never lead to
  // the host's files. The host cannot do this for the child: the root is often mounted by the
  // child itself (an overlay), so the host sees an empty directory.
  RootOpen = 27,      // s0 host path of the new root (after its mounts): opened O_PATH
  MkdirIn = 28,       // s0 in-root path, n0 mode; an existing directory (or link to one) is fine
  MknodIn = 29,       // s0 in-root path, n0 mode, n1 dev; anything existing is fine for S_IFREG
  SymlinkIn = 30,     // s0 target, s1 in-root link path; an existing entry is fine
  MountIn = 31,       // as Mount, s1 an in-root path (its final link followed inside the root)
  BindRemountIn = 32, // as BindRemount, s1 an in-root path
  Count
};

struct Step {
  Op op;
  const char* s[4];
  int64_t n[3];
  const void* blob;
  uint32_t blob_len;
};

struct FdMove {
  int source;
  int target;
};

struct NsJoin {
  int fd;
  int nstype;  // CLONE_NEW* constant, or 0 for "any"
};

// Where in the child a failure happened; sent back with the index inside that phase.
enum class Phase : int32_t {
  Pid = 0,     // not a failure: stage 1 reports the pid of stage 2 (index holds the pid)
  Setup = 1,   // signals, prctl, internal fd moves
  Join = 2,    // setns into joins[index]
  Fds = 3,     // dup2 of fds[index]
  Step = 4,    // steps[index]
  Exec = 5,    // execve
  Clone = 6,   // stage 1 cloning stage 2
  Cgroup = 7,  // joining cgroup_tasks[index] (a v1 `tasks` file)
};

// One record on the error pipe. Fits well inside PIPE_BUF, so a write is atomic.
struct ChildReport {
  int32_t phase;
  int32_t index;
  int32_t err;
};

struct Plan {
  // Namespaces created by the clone of the process that will exec.
  uint64_t clone_flags = 0;
  // Joined in this order, before anything else.
  std::vector<NsJoin> joins;
  // Joining a pid or time namespace only affects children: then a first stage joins and clones
  // the real child as our sibling (CLONE_PARENT).
  bool two_stage = false;
  // Open the child's (new) mount namespace before letting it run, and hand the fd back: while
  // it is open, the namespace outlives the child, so the unmounting of everything in it is not
  // part of the child's exit (and its report) but happens whenever the fd is closed.
  bool hold_mnt_ns = false;
  // cgroup2 directory fd for CLONE_INTO_CGROUP, or -1; and that directory's path, whose
  // cgroup.procs the parent writes instead when clone3 is not available.
  int cgroup_fd = -1;
  std::string cgroup_path;
  // Files the parent writes while the child waits (uid_map, cgroup.procs …); "{pid}" in path
  // or data is replaced by the child's pid.
  struct ParentWrite {
    std::string path;
    std::string data;
  };
  std::vector<ParentWrite> parent_writes;
  // cgroup v1 `tasks` files the child writes "0" to first thing, so it joins them itself. A
  // thread that moves itself needs no cgroup_threadgroup_rwsem, whose write side waits for an
  // RCU grace period (6-12 ms) when the parent writes the child's pid to cgroup.procs. The child
  // is one thread, so moving the thread moves the process. The parent opens them before clone
  // (the open's credentials are what the kernel checks) and sets cgroup_task_fds.
  std::vector<std::string> cgroup_tasks;
  std::vector<int> cgroup_task_fds;

  std::vector<FdMove> fds;
  std::vector<Step> steps;

  const char* exec_path = nullptr;
  const char* search_path = nullptr;  // PATH used when exec_path has no '/', or null
  std::vector<const char*> argv;      // null-terminated
  std::vector<const char*> envp;      // null-terminated
  int pdeathsig = 9;

  // Set by the parent just before clone.
  int sync_fd = -1;   // child reads one byte to go on; EOF means give up
  int report_fd = -1; // child writes ChildReport on failure; closed on exec

  // Backing storage: strings and blobs referenced by the pointers above.
  std::deque<std::string> strings;
  std::deque<std::vector<uint8_t>> blobs;

  const char* keep(std::string s) {
    strings.push_back(std::move(s));
    return strings.back().c_str();
  }
};

// The child's entry point (clone3 trampoline or glibc clone). Never returns.
extern "C" int ctr_child_main(void* plan);

}  // namespace ctr
