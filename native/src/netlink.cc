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
// Runs on a thread of its own, which ends right after (its namespace goes with it).
void new_netns(int protocol, OpenResult& r, int& ns) {
  if (unshare(CLONE_NEWNET) < 0) {
    r.err = errno;
    r.syscall = "unshare";
    return;
  }
  r = open_socket(protocol, -1);
  if (r.fd < 0) return;
  ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    r.err = errno;
    r.syscall = "open";
    close(r.fd);
    r.fd = -1;
  }
}

class NewNetnsWorker : public Napi::AsyncWorker {
 public:
  NewNetnsWorker(Napi::Env env, int protocol) : Napi::AsyncWorker(env, "ctr:netns"), deferred_(env), protocol_(protocol) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::thread t([this] { new_netns(protocol_, r_, ns_); });
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

struct Exchange {
  std::vector<std::vector<uint8_t>> replies;
  int err = 0;
  const char* syscall = "";
};

// Sends one request (or a batch) and collects every reply with its sequence number until each
// message's exchange ends: NLMSG_DONE for a dump, NLMSG_ERROR (an ack is an error of 0)
// otherwise. rtnetlink runs a request in the sender's context, so the replies are queued by
// the time sendto returns: the receive waits only for a request another thread delays.
void exchange(int fd, const std::vector<uint8_t>& req, Exchange& r) {
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
    for (size_t off = 0; off < req.size();) {
      const struct nlmsghdr* h = (const struct nlmsghdr*)(req.data() + off);
      pending.push_back({h->nlmsg_seq, (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP, (h->nlmsg_flags & NLM_F_ACK) != 0, false});
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
    size_t left = pending.size();
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do n = sendto(fd, req.data(), req.size(), 0, (struct sockaddr*)&kernel, sizeof kernel);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      r.err = errno;
      r.syscall = "sendto";
      return;
    }
    std::vector<uint8_t> buf(1 << 16);
    while (left > 0) {
      // MSG_TRUNC: n is the datagram's real length, so a message cut short is detected
      do n = recv(fd, buf.data(), buf.size(), MSG_TRUNC);
      while (n < 0 && errno == EINTR);
      if (n > (ssize_t)buf.size()) {
        r.err = EMSGSIZE;
        r.syscall = "recv";
        return;
      }
      if (n < 0) {
        r.err = errno;
        r.syscall = "recv";
        return;
      }
      if (n == 0) {
        r.err = ECONNRESET;
        r.syscall = "recv";
        return;
      }
      size_t len = (size_t)n;
      for (struct nlmsghdr* m = (struct nlmsghdr*)buf.data(); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
        Pending* p = nullptr;
        for (auto& q : pending)
          if (q.seq == m->nlmsg_seq && !q.done) p = &q;
        if (!p) continue;  // a stale reply of an earlier, timed-out request
        r.replies.emplace_back((uint8_t*)m, (uint8_t*)m + m->nlmsg_len);
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

Napi::Array replyArray(Napi::Env env, const Exchange& x) {
  Napi::Array a = Napi::Array::New(env, x.replies.size());
  for (size_t i = 0; i < x.replies.size(); i++)
    a.Set((uint32_t)i, Napi::Buffer<uint8_t>::Copy(env, x.replies[i].data(), x.replies[i].size()));
  return a;
}

// Runs exchange() on a worker thread.
class RequestWorker : public Napi::AsyncWorker {
 public:
  RequestWorker(Napi::Env env, int fd, std::vector<uint8_t> req)
      : Napi::AsyncWorker(env, "ctr:netlink"), deferred_(env), fd_(fd), req_(std::move(req)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { exchange(fd_, req_, x_); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (x_.err != 0) {
      deferred_.Reject(errno_error(env, x_.err, x_.syscall, "netlink").Value());
      return;
    }
    deferred_.Resolve(replyArray(env, x_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<uint8_t> req_;
  Exchange x_;
};

// The request of netlinkRequest(Sync): one message, or a batch — aligned messages that fill
// the buffer exactly, with distinct sequence numbers.
std::vector<uint8_t> checked_request(Napi::Env env, Napi::Value v) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(env, "request must be a Buffer");
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  if (b.Length() < sizeof(struct nlmsghdr))
    throw Napi::TypeError::New(env, "request is shorter than a netlink header");
  std::vector<uint32_t> seqs;
  for (size_t off = 0; off < b.Length();) {
    if (b.Length() - off < sizeof(struct nlmsghdr))
      throw Napi::TypeError::New(env, "request is shorter than a netlink header");
    const struct nlmsghdr* h = (const struct nlmsghdr*)(b.Data() + off);
    if (h->nlmsg_len < sizeof(struct nlmsghdr) || off + h->nlmsg_len > b.Length())
      throw Napi::TypeError::New(env, "request nlmsg_len does not match its length");
    for (uint32_t s : seqs)
      if (s == h->nlmsg_seq) throw Napi::TypeError::New(env, "requests of a batch need distinct sequence numbers");
    seqs.push_back(h->nlmsg_seq);
    off += NLMSG_ALIGN(h->nlmsg_len);
  }
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}

// netlinkRequest(fd, request) → Promise<Buffer[]>. One exchange at a time per socket: the
// caller serialises requests on a socket.
Napi::Value NetlinkRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = get_i32(env, info[0], "fd");
  auto* w = new RequestWorker(env, fd, checked_request(env, info[1]));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// netlinkRequestSync(fd, request) → Buffer[]: the same exchange on the calling thread. For
// short requests whose kernel work is the whole cost (rtnetlink runs them in the sender's
// context): no worker-thread round trip; the caller's thread waits as long as the kernel does.
Napi::Value NetlinkRequestSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = get_i32(env, info[0], "fd");
  std::vector<uint8_t> req = checked_request(env, info[1]);
  Exchange x;
  exchange(fd, req, x);
  if (x.err != 0) throw errno_error(env, x.err, x.syscall, "netlink");
  return replyArray(env, x);
}

// netlinkOpenNewNetnsSync(protocol) → { fd, netnsFd }: netlinkOpenNewNetns on a short-lived
// thread the calling thread waits for.
Napi::Value NetlinkOpenNewNetnsSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int protocol = get_i32(env, info[0], "protocol");
  OpenResult r;
  int ns = -1;
  std::thread t([&r, &ns, protocol] { new_netns(protocol, r, ns); });
  t.join();
  if (r.fd < 0) throw errno_error(env, r.err, r.syscall, "new network namespace");
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, r.fd));
  o.Set("netnsFd", Napi::Number::New(env, ns));
  return o;
}

}  // namespace

void RegisterNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkOpen", Napi::Function::New(env, NetlinkOpen, "netlinkOpen"));
  exports.Set("netlinkOpenNewNetns", Napi::Function::New(env, NetlinkOpenNewNetns, "netlinkOpenNewNetns"));
  exports.Set("netlinkRequest", Napi::Function::New(env, NetlinkRequest, "netlinkRequest"));
  exports.Set("netlinkRequestSync", Napi::Function::New(env, NetlinkRequestSync, "netlinkRequestSync"));
  exports.Set("netlinkOpenNewNetnsSync", Napi::Function::New(env, NetlinkOpenNewNetnsSync, "netlinkOpenNewNetnsSync"));
}

}  // namespace ctr
