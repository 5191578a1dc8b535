// mkdirs / rmdirs: a batch of mkdir(2) or rmdir(2) calls as one job on the thread pool, each
// path's errno reported on its own. A container's cgroup is one directory per hierarchy (nine
// on a hybrid host), made at create and removed at exit; through fs.promises each of those is a
// thread-pool trip and a promise turn, whose main-thread cost (~40 µs) is more than the
// in-memory file system's own work.
#include "dir_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace ctr {
namespace {

enum class DirOp { Mkdir, Rmdir };

class DirOpsWorker : public Napi::AsyncWorker {
 public:
  DirOpsWorker(Napi::Env env, DirOp op, std::vector<std::string> paths, mode_t mode)
      : Napi::AsyncWorker(env, op == DirOp::Mkdir ? "ctr:mkdirs" : "ctr:rmdirs"),
        deferred_(env), op_(op), paths_(std::move(paths)), mode_(mode), errs_(paths_.size(), 0) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  // In order: a caller may list a parent before its child.
  void Execute() override {
    for (size_t i = 0; i < paths_.size(); i++) {
      int r = op_ == DirOp::Mkdir ? mkdir(paths_[i].c_str(), mode_) : rmdir(paths_[i].c_str());
      errs_[i] = r < 0 ? errno : 0;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array out = Napi::Array::New(env, errs_.size());
    for (size_t i = 0; i < errs_.size(); i++) out.Set((uint32_t)i, Napi::Number::New(env, errs_[i]));
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  DirOp op_;
  std::vector<std::string> paths_;
  mode_t mode_;
  std::vector<int> errs_;
};

std::string abs_path(Napi::Env env, Napi::Value v, const std::string& where) {
  if (!v.IsString()) throw Napi::TypeError::New(env, where + " must be a string");
  std::string p = v.As<Napi::String>().Utf8Value();
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, where + " must be an absolute path without NUL bytes");
  return p;
}

std::vector<std::string> absolute_paths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "paths must be an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> paths;
  paths.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++)
    paths.push_back(abs_path(env, arr.Get(i), "paths[" + std::to_string(i) + "]"));
  return paths;
}

Napi::Value Mkdirs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> paths = absolute_paths(info);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "mode must be a number");
  int64_t mode = info[1].As<Napi::Number>().Int64Value();
  if (mode < 0 || mode > 07777) throw Napi::TypeError::New(env, "mode must be between 0 and 0o7777");
  auto* w = new DirOpsWorker(env, DirOp::Mkdir, std::move(paths), (mode_t)mode);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value Rmdirs(const Napi::CallbackInfo& info) {
  auto* w = new DirOpsWorker(info.Env(), DirOp::Rmdir, absolute_paths(info), 0);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// fsBatch: a short script of file-system calls run in order as one thread-pool job, stopping
// at the first failure. A snapshot's directories, attributes, record and publishing rename are
// a dozen calls; through fs.promises each is a thread-pool trip and a promise turn.
enum class FsOp : int { Mkdir = 0, Lchown = 1, Chmod = 2, WriteNew = 3, Rename = 4, MkdirExistOk = 5 };

struct FsStep {
  FsOp op;
  std::string path;
  int64_t a = 0, b = 0;
  std::string data;  // WriteNew: the content; Rename: the new path
};

class FsBatchWorker : public Napi::AsyncWorker {
 public:
  FsBatchWorker(Napi::Env env, std::vector<FsStep> steps)
      : Napi::AsyncWorker(env, "ctr:fsBatch"), deferred_(env), steps_(std::move(steps)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    for (size_t i = 0; i < steps_.size(); i++) {
      int e = run(steps_[i]);
      if (e) {
        failed_ = (int)i;
        errno_ = e;
        return;
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_ < 0) {
      deferred_.Resolve(env.Null());
      return;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("index", Napi::Number::New(env, failed_));
    r.Set("errno", Napi::Number::New(env, errno_));
    deferred_.Resolve(r);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  static int run(const FsStep& s) {
    const char* p = s.path.c_str();
    switch (s.op) {
      case FsOp::Mkdir:
        return mkdir(p, (mode_t)s.a) < 0 ? errno : 0;
      case FsOp::MkdirExistOk: {
        if (mkdir(p, (mode_t)s.a) == 0) return 0;
        if (errno != EEXIST) return errno;
        struct stat st;
        if (lstat(p, &st) < 0) return errno;
        return S_ISDIR(st.st_mode) ? 0 : EEXIST;
      }
      case FsOp::Lchown:
        return lchown(p, (uid_t)s.a, (gid_t)s.b) < 0 ? errno : 0;
      case FsOp::Chmod:
        return chmod(p, (mode_t)s.a) < 0 ? errno : 0;
      case FsOp::WriteNew: {
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)s.a);
        if (fd < 0) return errno;
        size_t off = 0;
        while (off < s.data.size()) {
          ssize_t n = write(fd, s.data.data() + off, s.data.size() - off);
          if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return e;
          }
          off += (size_t)n;
        }
        return close(fd) < 0 ? errno : 0;
      }
      case FsOp::Rename:
        return rename(p, s.data.c_str()) < 0 ? errno : 0;
    }
    return EINVAL;
  }

  Napi::Promise::Deferred deferred_;
  std::vector<FsStep> steps_;
  int failed_ = -1;
  int errno_ = 0;
};


int64_t whole(Napi::Env env, Napi::Value v, const std::string& where) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, where + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d || d < 0 || d > 4294967295.0)
    throw Napi::TypeError::New(env, where + " must be an integer from 0 to 2^32-1");
  return (int64_t)d;
}

// steps: [op, path, a?, b?, data?][] — see FsOp.
Napi::Value FsBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "steps must be an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<FsStep> steps;
  steps.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string where = "steps[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsArray()) throw Napi::TypeError::New(env, where + " must be an array");
    Napi::Array t = v.As<Napi::Array>();
    FsStep st;
    int64_t op = whole(env, t.Get(0u), where + "[0]");
    if (op > (int64_t)FsOp::MkdirExistOk) throw Napi::TypeError::New(env, where + "[0] is not an operation");
    st.op = (FsOp)op;
    st.path = abs_path(env, t.Get(1u), where + "[1]");
    switch (st.op) {
      case FsOp::Mkdir:
      case FsOp::MkdirExistOk:
      case FsOp::Chmod:
        st.a = whole(env, t.Get(2u), where + "[2]");
        if (st.a > 07777) throw Napi::TypeError::New(env, where + "[2] must be a mode (0 to 0o7777)");
        break;
      case FsOp::Lchown:
        st.a = whole(env, t.Get(2u), where + "[2]");
        st.b = whole(env, t.Get(3u), where + "[3]");
        break;
      case FsOp::WriteNew: {
        st.a = whole(env, t.Get(2u), where + "[2]");
        if (st.a > 07777) throw Napi::TypeError::New(env, where + "[2] must be a mode (0 to 0o7777)");
        Napi::Value d = t.Get(4u);
        if (d.IsBuffer()) {
          Napi::Buffer<char> b = d.As<Napi::Buffer<char>>();
          st.data.assign(b.Data(), b.Length());
        } else if (d.IsString()) {
          st.data = d.As<Napi::String>().Utf8Value();
        } else {
          throw Napi::TypeError::New(env, where + "[4] must be a string or a Buffer");
        }
        break;
      }
      case FsOp::Rename:
        st.data = abs_path(env, t.Get(4u), where + "[4]");
        break;
    }
    steps.push_back(std::move(st));
  }
  auto* w = new FsBatchWorker(env, std::move(steps));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterDirOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mkdirs", Napi::Function::New(env, Mkdirs, "mkdirs"));
  exports.Set("rmdirs", Napi::Function::New(env, Rmdirs, "rmdirs"));
  exports.Set("fsBatch", Napi::Function::New(env, FsBatch, "fsBatch"));
}

}  // namespace ctr
