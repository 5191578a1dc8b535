#include "poller.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <thread>

namespace ctr {

Poller& Poller::get() {
  static Poller* p = new Poller();  // lives as long as the process: its thread never ends
  return *p;
}

Poller::Poller() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ >= 0) std::thread([this] { loop(); }).detach();
}

uint64_t Poller::add(int fd, Handler handler) {
  if (epfd_ < 0) {
    errno = EMFILE;
    return 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) return 0;
  entries_.emplace(id, Entry{fd, std::move(handler)});
  return id;
}

void Poller::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  entries_.erase(it);
}

void Poller::loop() {
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epfd_, events, 64, -1);
    for (int i = 0; i < n; i++) {
      // Looked up by id under the lock: an entry removed meanwhile is simply not found.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(events[i].data.u64);
      if (it == entries_.end()) continue;
      if (it->second.handler()) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
        entries_.erase(it);
      }
    }
  }
}

}  // namespace ctr
