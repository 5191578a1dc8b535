// mkdirs / rmdirs: a batch of mkdir(2) or rmdir(2) calls as one job on the thread pool, each
// path's errno reported on its own. A container's cgroup is one directory per hierarchy (nine
// on a hybrid host), made at create and removed at exit; through fs.promises each of those is a
// thread-pool trip and a promise turn, whose main-thread cost (~40 µs) is more than the
// in-memory file system's own work.
#include "dir_ops.h"

#include <errno.h>
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

std::vector<std::string> absolute_paths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "paths must be an array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<std::string> paths;
  paths.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    std::string where = "paths[" + std::to_string(i) + "]";
    if (!v.IsString()) throw Napi::TypeError::New(env, where + " must be a string");
    std::string p = v.As<Napi::String>().Utf8Value();
    if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, where + " must be an absolute path without NUL bytes");
    paths.push_back(std::move(p));
  }
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

}  // namespace

void RegisterDirOps(Napi::Env env, Napi::Object exports) {
  exports.Set("mkdirs", Napi::Function::New(env, Mkdirs, "mkdirs"));
  exports.Set("rmdirs", Napi::Function::New(env, Rmdirs, "rmdirs"));
}

}  // namespace ctr
