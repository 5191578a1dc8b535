// JavaScript bindings of @ctr/native: the spawn-plan interpreter, the exit watcher and a few
// syscall-level primitives. Policy lives in TypeScript; this file only converts and checks.
#include <errno.h>
#include <fcntl.h>
#include <napi.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/epoll.h>

#include <memory>
#include <thread>

#include "fs_ops.h"
#include "pty.h"
#include "netlink.h"
#include "napi_errors.h"
#include "plan.h"
#include "poller.h"
#include "remove_tree.h"
#include "dir_ops.h"
#include "spawn.h"

namespace ctr {
namespace {

[[noreturn]] void throw_type(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, "invalid spawn plan: " + what);
}

int64_t get_int(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) throw_type(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d) throw_type(env, what + " must be an integer");
  return (int64_t)d;
}

const char* get_str(Plan& plan, Napi::Env env, Napi::Value v, const std::string& what,
                    bool nullable) {
  if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsString()) throw_type(env, what + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw_type(env, what + " contains a NUL byte");
  return plan.keep(std::move(s));
}

Napi::Array get_array(Napi::Env env, Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw_type(env, std::string(key) + " must be an array");
  return v.As<Napi::Array>();
}

// The steps arrive packed by native/lib (packSteps): one typed array per field and every string
// in one NUL-separated buffer, so reading a plan's few dozen steps is a handful of Node-API
// calls rather than ten per step (~0.7 ms of main-thread time per spawn, unpacked).
template <typename T>
T* typed_data(Napi::Env env, Napi::Object o, const char* key, napi_typedarray_type type, size_t count) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw_type(env, std::string("steps.") + key + " has the wrong type");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (a.ElementLength() != count) throw_type(env, std::string("steps.") + key + " has the wrong length");
  Napi::ArrayBuffer buf = a.ArrayBuffer();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(buf.Data()) + a.ByteOffset());
}

void parse_steps(Plan& plan, Napi::Env env, Napi::Value packed) {
  if (!packed.IsObject()) throw_type(env, "steps must be packed (packSteps)");
  Napi::Object o = packed.As<Napi::Object>();
  int64_t count = get_int(env, o.Get("count"), "steps.count");
  if (count < 0 || count > 100000) throw_type(env, "steps.count is out of range");
  size_t n = (size_t)count;
  const int32_t* ops = typed_data<int32_t>(env, o, "ops", napi_int32_array, n);
  const int32_t* str_at = typed_data<int32_t>(env, o, "strings", napi_int32_array, n * 4);
  const int64_t* nums = typed_data<int64_t>(env, o, "numbers", napi_bigint64_array, n * 3);
  const int32_t* blob_at = typed_data<int32_t>(env, o, "blobIndex", napi_int32_array, n);
  Napi::Value tv = o.Get("text");
  if (!tv.IsBuffer()) throw_type(env, "steps.text must be a Buffer");
  Napi::Buffer<char> text = tv.As<Napi::Buffer<char>>();
  // One copy of every string, each NUL-terminated by the packer; the steps point into it.
  plan.blobs.emplace_back(text.Data(), text.Data() + text.Length());
  const std::vector<uint8_t>& strings = plan.blobs.back();
  if (!strings.empty() && strings.back() != 0) throw_type(env, "steps.text must end with a NUL");
  Napi::Value bv = o.Get("blobs");
  if (!bv.IsArray()) throw_type(env, "steps.blobs must be an array");
  Napi::Array blobs = bv.As<Napi::Array>();

  plan.steps.reserve(n);
  for (size_t i = 0; i < n; i++) {
    std::string where = "steps[" + std::to_string(i) + "]";
    Step st{};
    if (ops[i] < 0 || ops[i] >= (int32_t)Op::Count) throw_type(env, where + ".op is unknown");
    st.op = (Op)ops[i];
    for (int k = 0; k < 4; k++) {
      int32_t at = str_at[i * 4 + k];
      if (at < 0) continue;
      if ((size_t)at >= strings.size()) throw_type(env, where + ".s is out of the text");
      st.s[k] = reinterpret_cast<const char*>(strings.data()) + at;
    }
    for (int k = 0; k < 3; k++) st.n[k] = nums[i * 3 + k];
    if (blob_at[i] >= 0) {
      Napi::Value b = blobs.Get((uint32_t)blob_at[i]);
      if (!b.IsBuffer()) throw_type(env, where + ".blob must be a Buffer");
      Napi::Buffer<uint8_t> buf = b.As<Napi::Buffer<uint8_t>>();
      plan.blobs.emplace_back(buf.Data(), buf.Data() + buf.Length());
      st.blob = plan.blobs.back().data();
      st.blob_len = (uint32_t)buf.Length();
    }
    // Operands each op needs, so the child never dereferences a null it did not expect.
    auto need = [&](int k) {
      if (!st.s[k]) throw_type(env, where + ".s[" + std::to_string(k) + "] is required");
    };
    switch (st.op) {
      case Op::Mount:
      case Op::BindRemount:
        need(1);
        break;
      case Op::Symlink:
        need(0);
        need(1);
        break;
      case Op::WriteFile:
        need(0);
        need(1);
        break;
      case Op::SymlinkIn:
        need(0);
        need(1);
        break;
      case Op::MountIn:
      case Op::BindRemountIn:
        need(1);
        break;
      case Op::RootOpen:
      case Op::MkdirIn:
      case Op::MknodIn:
      case Op::Mkdir:
      case Op::Mknod:
      case Op::PivotRoot:
      case Op::Chdir:
      case Op::SetHostname:
      case Op::SetDomainname:
      case Op::Umount:
      case Op::MaskPath:
      case Op::ReadonlyPath:
        need(0);
        break;
      case Op::LinkUp:
        need(0);
        if (strlen(st.s[0]) >= 16) throw_type(env, where + ".s[0] is longer than an interface name");
        break;
      case Op::CapSet:
        if (st.blob_len != 24) throw_type(env, where + ".blob must hold 6 uint32");
        break;
      case Op::SetGroups:
        if (st.blob_len % 4) throw_type(env, where + ".blob must hold uint32 gids");
        break;
      case Op::Seccomp:
        if (!st.blob || st.blob_len % 8) throw_type(env, where + ".blob must hold sock_filter");
        break;
      default:
        break;
    }
    plan.steps.push_back(st);
  }
}

std::unique_ptr<Plan> parse_plan(Napi::Env env, Napi::Object o) {
  auto plan = std::make_unique<Plan>();
  Plan& p = *plan;
  Napi::Value cf = o.Get("cloneFlags");
  p.clone_flags = (uint64_t)get_int(env, cf, "cloneFlags");
  p.two_stage = o.Get("twoStage").ToBoolean();
  p.hold_mnt_ns = o.Has("holdMountNs") && o.Get("holdMountNs").ToBoolean();
  p.cgroup_fd = o.Has("cgroupFd") && !o.Get("cgroupFd").IsUndefined()
                    ? (int)get_int(env, o.Get("cgroupFd"), "cgroupFd")
                    : -1;
  if (o.Has("cgroupPath") && o.Get("cgroupPath").IsString())
    p.cgroup_path = o.Get("cgroupPath").As<Napi::String>().Utf8Value();
  p.pdeathsig = o.Has("pdeathsig") ? (int)get_int(env, o.Get("pdeathsig"), "pdeathsig") : SIGKILL;

  Napi::Array joins = get_array(env, o, "joins");
  for (uint32_t i = 0; i < joins.Length(); i++) {
    Napi::Object j = joins.Get(i).As<Napi::Object>();
    std::string w = "joins[" + std::to_string(i) + "]";
    p.joins.push_back({(int)get_int(env, j.Get("fd"), w + ".fd"),
                       (int)get_int(env, j.Get("nstype"), w + ".nstype")});
  }
  Napi::Array writes = get_array(env, o, "parentWrites");
  for (uint32_t i = 0; i < writes.Length(); i++) {
    Napi::Object w = writes.Get(i).As<Napi::Object>();
    p.parent_writes.push_back({w.Get("path").ToString().Utf8Value(),
                               w.Get("data").ToString().Utf8Value()});
  }
  if (o.Has("cgroupTasks") && !o.Get("cgroupTasks").IsUndefined()) {
    Napi::Array tasks = get_array(env, o, "cgroupTasks");
    for (uint32_t i = 0; i < tasks.Length(); i++) {
      Napi::Value t = tasks.Get(i);
      if (!t.IsString()) throw_type(env, "cgroupTasks[" + std::to_string(i) + "] must be a string");
      p.cgroup_tasks.push_back(t.As<Napi::String>().Utf8Value());
    }
  }
  Napi::Array fds = get_array(env, o, "fds");
  if (fds.Length() > 64) throw_type(env, "fds: at most 64 descriptors can be passed");
  for (uint32_t i = 0; i < fds.Length(); i++) {
    Napi::Object f = fds.Get(i).As<Napi::Object>();
    std::string w = "fds[" + std::to_string(i) + "]";
    int src = (int)get_int(env, f.Get("source"), w + ".source");
    int dst = (int)get_int(env, f.Get("target"), w + ".target");
    if (src < 0 || dst < 0 || dst > 1023) throw_type(env, w + " is out of range");
    p.fds.push_back({src, dst});
  }
  parse_steps(p, env, o.Get("steps"));

  Napi::Value ev = o.Get("exec");
  if (!ev.IsObject()) throw_type(env, "exec must be an object");
  Napi::Object ex = ev.As<Napi::Object>();
  p.exec_path = get_str(p, env, ex.Get("path"), "exec.path", false);
  p.search_path = get_str(p, env, ex.Get("search"), "exec.search", true);
  Napi::Array argv = get_array(env, ex, "argv");
  for (uint32_t i = 0; i < argv.Length(); i++)
    p.argv.push_back(get_str(p, env, argv.Get(i), "exec.argv[" + std::to_string(i) + "]", false));
  p.argv.push_back(nullptr);
  Napi::Array envp = get_array(env, ex, "env");
  for (uint32_t i = 0; i < envp.Length(); i++)
    p.envp.push_back(get_str(p, env, envp.Get(i), "exec.env[" + std::to_string(i) + "]", false));
  p.envp.push_back(nullptr);
  return plan;
}

class SpawnWorker : public Napi::AsyncWorker {
 public:
  SpawnWorker(Napi::Env env, std::unique_ptr<Plan> plan)
      : Napi::AsyncWorker(env, "ctr:spawn"), deferred_(env), plan_(std::move(plan)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { outcome_ = spawn_process(*plan_); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (outcome_.err == 0) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("pid", outcome_.pid);
      r.Set("pidfd", outcome_.pidfd);
      if (outcome_.mntns_fd >= 0) r.Set("mntnsFd", outcome_.mntns_fd);
      deferred_.Resolve(r);
      return;
    }
    Napi::Error e = outcome_.phase < 0
                        ? errno_error(env, outcome_.err, outcome_.syscall, outcome_.path)
                        : errno_error(env, outcome_.err, "spawn", "");
    e.Set("phase", Napi::Number::New(env, outcome_.phase));
    e.Set("index", Napi::Number::New(env, outcome_.index));
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Plan> plan_;
  SpawnOutcome outcome_;
};

Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_type(env, "expected a plan object");
  auto* w = new SpawnWorker(env, parse_plan(env, info[0].As<Napi::Object>()));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Watches a child's pidfd and calls back (code, signal) on the JavaScript thread once it has
// exited and been reaped with waitid(P_PIDFD). It never reaps anything else, so Node's own
// child_process keeps working beside it. Waiting happens on the addon's poller thread (epoll over
// every pidfd, see poller.h), which keeps this Node-API only: no libuv headers, no thread
// per child.
class ExitWatcher : public Napi::ObjectWrap<ExitWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExitWatcher",
                       {InstanceMethod("kill", &ExitWatcher::Kill),
                        InstanceMethod("ref", &ExitWatcher::RefLoop),
                        InstanceMethod("unref", &ExitWatcher::UnrefLoop)});
  }

  ExitWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExitWatcher>(info) {
    Napi::Env env = info.Env();
    pidfd_ = (int)get_int(env, info[0], "pidfd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "ctr:exit", 0, 1);
    Napi::ObjectWrap<ExitWatcher>::Ref();  // stay alive while the child runs
    uint64_t id = Poller::get().add(pidfd_, [this] { return Reap(); });
    if (id == 0) {
      int err = errno;
      tsfn_.Release();
      Napi::ObjectWrap<ExitWatcher>::Unref();
      throw errno_error(env, err, "epoll_ctl", "pidfd");
    }
  }

  ~ExitWatcher() override {
    if (pidfd_ >= 0) close(pidfd_);
  }

 private:
  // On the poller thread when the pidfd is readable: reap, and hand the status to JavaScript.
  bool Reap() {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do r = waitid((idtype_t)P_PIDFD, pidfd_, &si, WEXITED | WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0 && si.si_pid == 0) return false;  // not yet: spurious wake-up
    int code = -1, sig = -1;
    if (r == 0) {
      if (si.si_code == CLD_EXITED) code = si.si_status;
      else sig = si.si_status;
    }
    tsfn_.BlockingCall([this, code, sig](Napi::Env env, Napi::Function cb) { Finish(env, cb, code, sig); });
    return true;
  }

  // On the JavaScript thread, after the poller thread has reaped the child.
  void Finish(Napi::Env env, Napi::Function cb, int code, int sig) {
    exited_ = true;
    // Reaped: the pid may be reused from now on, and the pidfd would only pin a dead task.
    close(pidfd_);
    pidfd_ = -1;
    Napi::HandleScope scope(env);
    Napi::Value c = code >= 0 ? Napi::Number::New(env, code) : env.Null();
    Napi::Value s = sig >= 0 ? Napi::Number::New(env, sig) : env.Null();
    tsfn_.Release();
    Napi::ObjectWrap<ExitWatcher>::Unref();
    cb.Call({c, s});
  }

  Napi::Value Kill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int sig = (int)get_int(env, info[0], "signal");
    // Signals go through the pidfd, never a pid that might have been recycled; once the child
    // is reaped there is nothing left to signal.
    if (exited_) throw errno_error(env, ESRCH, "pidfd_send_signal", "");
    if (syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0) < 0)
      throw errno_error(env, errno, "pidfd_send_signal", "");
    return env.Undefined();
  }
  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (!exited_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (!exited_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  int pidfd_ = -1;
  bool exited_ = false;
  Napi::ThreadSafeFunction tsfn_;
};

// Calls back with the counter each time an eventfd is signalled — how cgroup v1 reports OOM
// (memory.oom_control registered in cgroup.event_control). The eventfd is watched on the
// poller thread and read there; JavaScript only sees the counts. Owns the fd until close().
class EventfdWatcher : public Napi::ObjectWrap<EventfdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "EventfdWatcher", {InstanceMethod("close", &EventfdWatcher::Close)});
  }

  EventfdWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventfdWatcher>(info) {
    Napi::Env env = info.Env();
    fd_ = (int)get_int(env, info[0], "fd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "ctr:eventfd", 0, 1);
    // Unref'd: watching alone must not keep the process alive (the cgroup's processes do).
    tsfn_.Unref(env);
    id_ = Poller::get().add(fd_, [this] { return Drain(); });
    if (id_ == 0) {
      int err = errno;
      tsfn_.Release();
      throw errno_error(env, err, "epoll_ctl", "eventfd");
    }
    Napi::ObjectWrap<EventfdWatcher>::Ref();  // alive until close()
  }

  ~EventfdWatcher() override { Stop(); }

 private:
  // Poller thread: read the counter (which resets it) and pass it on.
  bool Drain() {
    uint64_t count = 0;
    ssize_t n = read(fd_, &count, sizeof count);
    if (n != (ssize_t)sizeof count) return errno != EAGAIN && errno != EINTR;  // broken fd: stop
    tsfn_.BlockingCall([count](Napi::Env env, Napi::Function cb) {
      cb.Call({Napi::Number::New(env, (double)count)});
    });
    return false;
  }

  void Stop() {
    if (id_ == 0) return;
    Poller::get().remove(id_);  // after this, Drain never runs again
    id_ = 0;
    tsfn_.Release();
    close(fd_);
    fd_ = -1;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (id_ != 0) {
      Stop();
      Napi::ObjectWrap<EventfdWatcher>::Unref();
    }
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uint64_t id_ = 0;
  Napi::ThreadSafeFunction tsfn_;
};

// ---- primitives -------------------------------------------------------------------------

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw errno_error(info.Env(), errno, "pipe2", "");
  Napi::Array a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = (int)get_int(info.Env(), info[0], "fd");
  if (close(fd) < 0 && errno != EINTR) throw errno_error(info.Env(), errno, "close", "");
  return info.Env().Undefined();
}

std::string opt_string(const Napi::Value& v) {
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string source = opt_string(info[0]), target = opt_string(info[1]),
              fstype = opt_string(info[2]), data = opt_string(info[4]);
  unsigned long flags = (unsigned long)get_int(env, info[3], "flags");
  if (mount(info[0].IsString() ? source.c_str() : nullptr, target.c_str(),
            info[2].IsString() ? fstype.c_str() : nullptr, flags,
            info[4].IsString() ? data.c_str() : nullptr) < 0)
    throw errno_error(env, errno, "mount", target);
  return env.Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string target = opt_string(info[0]);
  int flags = (int)get_int(env, info[1], "flags");
  if (umount2(target.c_str(), flags) < 0) throw errno_error(env, errno, "umount2", target);
  return env.Undefined();
}

Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = eventfd((unsigned)get_int(env, info[0], "initval"),
                   (int)get_int(env, info[1], "flags") | EFD_CLOEXEC);
  if (fd < 0) throw errno_error(env, errno, "eventfd", "");
  return Napi::Number::New(env, fd);
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = (int)get_int(env, info[0], "pid");
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw errno_error(env, errno, "pidfd_open", std::to_string(pid));
  return Napi::Number::New(env, (double)fd);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("ExitWatcher", ExitWatcher::Define(env));
  exports.Set("EventfdWatcher", EventfdWatcher::Define(env));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  exports.Set("eventfd", Napi::Function::New(env, Eventfd, "eventfd"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  RegisterFsOps(env, exports);
  RegisterRemoveTree(env, exports);
  RegisterDirOps(env, exports);
  RegisterPty(env, exports);
  RegisterNetlink(env, exports);
  return exports;
}

}  // namespace
}  // namespace ctr

static Napi::Object InitCtrNative(Napi::Env env, Napi::Object exports) {
  return ctr::Init(env, exports);
}
NODE_API_MODULE(ctr_native, InitCtrNative)
