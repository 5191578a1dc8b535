// One background thread that waits (epoll) on every fd the addon watches — child pidfds,
// cgroup eventfds — and runs a handler when one becomes readable. One thread for all, so
// watching costs no libuv handle (Node-API only) and no thread per child.
#pragma once

#include <stdint.h>

#include <functional>
#include <mutex>
#include <unordered_map>

namespace ctr {

class Poller {
 public:
  // Runs on the poller thread, with no other handler running. Returns true to stop watching.
  using Handler = std::function<bool()>;

  static Poller& get();

  // Watches fd (level-triggered). Returns an id > 0, or 0 with errno set.
  uint64_t add(int fd, Handler handler);
  // Stops watching. When it returns, the handler is not running and will not run again.
  void remove(uint64_t id);

 private:
  Poller();
  void loop();

  struct Entry {
    int fd;
    Handler handler;
  };
  int epfd_ = -1;
  uint64_t next_id_ = 1;
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
};

}  // namespace ctr
