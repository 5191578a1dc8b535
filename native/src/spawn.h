// The parent side of spawn: clone the child, do what only the parent can while it waits,
// release it and wait until it has exec'd or failed. Runs on a libuv worker thread.
#pragma once

#include <string>

#include "plan.h"

namespace ctr {

struct SpawnOutcome {
  int pid = -1;
  int pidfd = -1;
  // The child's mount namespace, when the plan asked to hold it (and it could be opened).
  int mntns_fd = -1;
  // On failure: err != 0. A child-side failure has phase/index from its report; a parent-side
  // one has phase = -1 and names the syscall and path.
  int err = 0;
  int phase = -1;
  int index = -1;
  std::string syscall;
  std::string path;
};

SpawnOutcome spawn_process(Plan& plan);

}  // namespace ctr
