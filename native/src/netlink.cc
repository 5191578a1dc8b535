// Netlink sockets: open one (inside a given network namespace when asked) and run one
// request/response exchange at a time on a worker thread. No policy: TypeScript builds the
// request (header, flags, sequence number) and parses the replies, errors included.
#include "netlink.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "napi_errors.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace ctr {
namespace {

struct OpenResult {
  int fd = -1;
  int err = 0;
  const char* syscall = "";
};

// Runs on the thread whose network namespace the socket should belong to.
OpenResult open_socket(int protocol, int netns_fd) {
  OpenResult r;
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) {
    r.err = errno;
    r.syscall = "setns";
    return r;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    r.err = errno;
    r.syscall = "socket";
    return r;
  }
  int one = 1;
  // Errors carry the kernel's text (extended ack) and not a copy of the whole request.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct timeval tv = {5, 0};  // nothing hangs: a request without an answer fails with EAGAIN
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rcvbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    r.err = errno;
    r.syscall = "bind";
    close(fd);
    return r;
  }
  r.fd = fd;
  return r;
}

int32_t get_i32(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int32_t)d) throw Napi::TypeError::New(env, std::string(what) + " must be a 32-bit integer");
  return (int32_t)d;
}

// netlinkOpen(protocol, netnsFd) → fd. A network namespace is per thread for setns(2), and a
// socket keeps the namespace it was created in: so a short-lived thread joins the namespace,
// creates and binds the socket, and exits. The calling thread never changes namespace.
Napi::Value NetlinkOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int protocol = get_i32(env, info[0], "protocol");
  int netns_fd = info[1].IsUndefined() ? -1 : get_i32(env, info[1], "netnsFd");
  OpenResult r;
  if (netns_fd < 0) {
    r = open_socket(protocol, -1);
  } else {
    std::thread t([&r, protocol, netns_fd] { r = open_socket(protocol, netns_fd); });
    t.join();
  }
  if (r.fd < 0) throw errno_error(env, r.err, r.syscall, netns_fd >= 0 ? "netns fd " + std::to_string(netns_fd) : "");
  return Napi::Number::New(env, r.fd);
}

// netlinkOpenNewNetns(protocol) → Promise<{ fd, netnsFd }>: a new network namespace with a
// netlink socket inside it, without a process to hold it: a short-lived thread unshares
// CLONE_NEWNET, creates the socket and opens /proc/thread-self/ns/net, and exits. The two fds
// keep the namespace (with `lo`, down) alive until closed or until a process joins it. The
// thread runs from a pool worker, so neither the caller's thread nor a pool thread ever
// changes namespace.
class NewNetnsWorker : public Napi::AsyncWorker {
 public:
  NewNetnsWorker(Napi::Env env, int protocol) : Napi::AsyncWorker(env, "ctr:netns"), deferred_(env), protocol_(protocol) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::thread t([this] {
      if (unshare(CLONE_NEWNET) < 0) {
        r_.err = errno;
        r_.syscall = "unshare";
        return;
      }
      r_ = open_socket(protocol_, -1);
      if (r_.fd < 0) return;
      ns_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (ns_ < 0) {
        r_.err = errno;
        r_.syscall = "open";
        close(r_.fd);
        r_.fd = -1;
      }
    });
    t.join();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (r_.fd < 0) {
      deferred_.Reject(errno_error(env, r_.err, r_.syscall, "new network namespace").Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("fd", Napi::Number::New(env, r_.fd));
    o.Set("netnsFd", Napi::Number::New(env, ns_));
    deferred_.Resolve(o);
  }

 private:
  Napi::Promise::Deferred deferred_;
  int protocol_;
  OpenResult r_;
  int ns_ = -1;
};

Napi::Value NetlinkOpenNewNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* w = new NewNetnsWorker(env, get_i32(env, info[0], "protocol"));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Sends one request (or a batch) and collects every reply with its sequence number until the exchange
// ends: NLMSG_DONE for a dump, NLMSG_ERROR (an ack is an error of 0) otherwise.
class RequestWorker : public Napi::AsyncWorker {
 public:
  RequestWorker(Napi::Env env, int fd, std::vector<uint8_t> req)
      : Napi::AsyncWorker(env, "ctr:netlink"), deferred_(env), fd_(fd), req_(std::move(req)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    // The request is one message or a batch of them (sent in one datagram: the kernel runs
    // them in order and answers each). Every message with NLM_F_ACK, a dump, or a GET that
    // answers once, ends with its own reply; collect until each of them has.
    struct Pending {
      uint32_t seq;
      bool dump;
      bool ack;
      bool done;
    };
    std::vector<Pending> pending;
    for (size_t off = 0; off < req_.size();) {
      const struct nlmsghdr* h = (const struct nlmsghdr*)(req_.data() + off);
      pending.push_back({h->nlmsg_seq, (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP, (h->nlmsg_flags & NLM_F_ACK) != 0, false});
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    size_t left = pending.size();
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do n = sendto(fd_, req_.data(), req_.size(), 0, (struct sockaddr*)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      err_ = errno;
      syscall_ = "sendto";
      return;
    }
    std::vector<uint8_t> buf(1 << 16);
    while (left > 0) {
      // MSG_TRUNC: n is the datagram's real length, so a message cut short is detected
      do n = recv(fd_, buf.data(), buf.size(), MSG_TRUNC);
      while (n < 0 && errno == EINTR);
      if (n > (ssize_t)buf.size()) {
        err_ = EMSGSIZE;
        syscall_ = "recv";
        return;
      }
      if (n < 0) {
        err_ = errno;
        syscall_ = "recv";
        return;
      }
      if (n == 0) {
        err_ = ECONNRESET;
        syscall_ = "recv";
        return;
      }
      size_t len = (size_t)n;
      for (struct nlmsghdr* m = (struct nlmsghdr*)buf.data(); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
        Pending* p = nullptr;
        for (auto& q : pending)
          if (q.seq == m->nlmsg_seq && !q.done) p = &q;
        if (!p) continue;  // a stale reply of an earlier, timed-out request
        replies_.emplace_back((uint8_t*)m, (uint8_t*)m + m->nlmsg_len);
        bool ends = m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR;
        // A single reply (e.g. RTM_GETLINK by name) ends it unless an ack was asked for too.
        if (!ends && !p->dump && !(m->nlmsg_flags & NLM_F_MULTI) && !p->ack) ends = true;
        if (ends) {
          p->done = true;
          left--;
        }
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_ != 0) {
      deferred_.Reject(errno_error(env, err_, syscall_, "netlink").Value());
      return;
    }
    Napi::Array a = Napi::Array::New(env, replies_.size());
    for (size_t i = 0; i < replies_.size(); i++)
      a.Set((uint32_t)i, Napi::Buffer<uint8_t>::Copy(env, replies_[i].data(), replies_[i].size()));
    deferred_.Resolve(a);
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<uint8_t> req_;
  std::vector<std::vector<uint8_t>> replies_;
  int err_ = 0;
  const char* syscall_ = "";
};

// netlinkRequest(fd, request) → Promise<Buffer[]>. One exchange at a time per socket: the
// caller serialises requests on a socket.
Napi::Value NetlinkRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = get_i32(env, info[0], "fd");
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "request must be a Buffer");
  Napi::Buffer<uint8_t> b = info[1].As<Napi::Buffer<uint8_t>>();
  if (b.Length() < sizeof(struct nlmsghdr))
    throw Napi::TypeError::New(env, "request is shorter than a netlink header");
  // One message, or a batch: aligned messages that fill the buffer exactly, with distinct
  // sequence numbers.
  std::vector<uint32_t> seqs;
  for (size_t off = 0; off < b.Length();) {
    if (b.Length() - off < sizeof(struct nlmsghdr))
      throw Napi::TypeError::New(env, "request is shorter than a netlink header");
    const struct nlmsghdr* h = (const struct nlmsghdr*)(b.Data() + off);
    size_t next = off + NLMSG_ALIGN(h->nlmsg_len);
    if (h->nlmsg_len < sizeof(struct nlmsghdr) || off + h->nlmsg_len > b.Length())
      throw Napi::TypeError::New(env, "request nlmsg_len does not match its length");
    for (uint32_t s : seqs)
      if (s == h->nlmsg_seq) throw Napi::TypeError::New(env, "requests of a batch need distinct sequence numbers");
    seqs.push_back(h->nlmsg_seq);
    off = next;
  }
  auto* w = new RequestWorker(env, fd, std::vector<uint8_t>(b.Data(), b.Data() + b.Length()));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkOpen", Napi::Function::New(env, NetlinkOpen, "netlinkOpen"));
  exports.Set("netlinkOpenNewNetns", Napi::Function::New(env, NetlinkOpenNewNetns, "netlinkOpenNewNetns"));
  exports.Set("netlinkRequest", Napi::Function::New(env, NetlinkRequest, "netlinkRequest"));
}

}  // namespace ctr
