// File-system primitives for the image store. Each is one syscall with argument checks; the
// policy (what to resolve where, what to reject) lives in TypeScript.
#include "fs_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "napi_errors.h"

namespace ctr {
namespace {

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an integer");
  return (int64_t)d;
}

std::string arg_str(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " contains a NUL byte");
  return s;
}

// A string argument that may be null (mount's source, fstype and data).
bool arg_opt_str(const Napi::CallbackInfo& info, size_t i, const char* name, std::string* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = arg_str(info, i, name);
  return true;
}

// openat2(dirfd, path, flags, mode, resolve) → fd. O_CLOEXEC is always added: the fd must not
// leak into children the addon spawns.
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = (int)arg_int(info, 0, "dirfd");
  std::string path = arg_str(info, 1, "path");
  struct open_how how = {};
  how.flags = (uint64_t)arg_int(info, 2, "flags") | O_CLOEXEC;
  how.mode = (uint64_t)arg_int(info, 3, "mode");
  how.resolve = (uint64_t)arg_int(info, 4, "resolve");
  // O_PATH takes no mode and open(2) rejects a mode without O_CREAT/O_TMPFILE.
  if (!(how.flags & (O_CREAT | __O_TMPFILE))) how.mode = 0;
  // RESOLVE_IN_ROOT and RESOLVE_BENEATH fail with EAGAIN when a concurrent rename races the
  // ".." check; the kernel asks the caller to retry.
  long fd = -1;
  for (int attempt = 0; attempt < 32; attempt++) {
    fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  if (fd < 0) throw errno_error(env, errno, "openat2", path);
  return Napi::Number::New(env, (double)fd);
}

Napi::Value Mknodat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dirfd = (int)arg_int(info, 0, "dirfd");
  std::string name = arg_str(info, 1, "name");
  mode_t mode = (mode_t)arg_int(info, 2, "mode");
  dev_t dev = (dev_t)arg_int(info, 3, "dev");
  if (mknodat(dirfd, name.c_str(), mode, dev) < 0) throw errno_error(env, errno, "mknodat", name);
  return env.Undefined();
}

Napi::Value Lsetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_str(info, 0, "path"), name = arg_str(info, 1, "name");
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "value must be a Buffer");
  Napi::Buffer<uint8_t> value = info[2].As<Napi::Buffer<uint8_t>>();
  int flags = info.Length() > 3 && info[3].IsNumber() ? (int)arg_int(info, 3, "flags") : 0;
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.Length(), flags) < 0)
    throw errno_error(env, errno, "lsetxattr", path + " " + name);
  return env.Undefined();
}

// lgetxattr → Buffer, or null when the attribute is not set. The size is asked first and the
// read retried if the value grew in between (ERANGE).
Napi::Value Lgetxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_str(info, 0, "path"), name = arg_str(info, 1, "name");
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENODATA) return env.Null();
      throw errno_error(env, errno, "lgetxattr", path + " " + name);
    }
    std::vector<uint8_t> buf((size_t)size);
    ssize_t got = lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) {
      if (errno == ENODATA) return env.Null();
      throw errno_error(env, errno, "lgetxattr", path + " " + name);
    }
    return Napi::Buffer<uint8_t>::Copy(env, buf.data(), (size_t)got);
  }
  throw errno_error(env, ERANGE, "lgetxattr", path + " " + name);
}

Napi::Value Llistxattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = arg_str(info, 0, "path");
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) throw errno_error(env, errno, "llistxattr", path);
    std::vector<char> buf((size_t)size + 1);
    ssize_t got = llistxattr(path.c_str(), buf.data(), (size_t)size);
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) throw errno_error(env, errno, "llistxattr", path);
    Napi::Array names = Napi::Array::New(env);
    uint32_t n = 0;
    for (ssize_t i = 0; i < got;) {
      size_t len = strnlen(buf.data() + i, (size_t)(got - i));
      if (len > 0) names.Set(n++, Napi::String::New(env, buf.data() + i, len));
      i += (ssize_t)len + 1;
    }
    return names;
  }
  throw errno_error(env, ERANGE, "llistxattr", path);
}

// mount(2) with relative paths in `data` resolved against `cwd` — overlay's lowerdir list is
// limited to one page, so deep images mount with short relative names. The mount runs on a
// short-lived thread that unshares its fs_struct first, so the process's cwd never changes
// under Node's other threads.
Napi::Value MountIn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string cwd = arg_str(info, 0, "cwd"), source, target = arg_str(info, 2, "target"),
              fstype, data;
  bool has_source = arg_opt_str(info, 1, "source", &source);
  bool has_fstype = arg_opt_str(info, 3, "fstype", &fstype);
  unsigned long flags = (unsigned long)arg_int(info, 4, "flags");
  bool has_data = arg_opt_str(info, 5, "data", &data);
  int err = 0;
  const char* failed = nullptr;
  std::thread worker([&] {
    if (unshare(CLONE_FS) < 0) { err = errno; failed = "unshare(CLONE_FS)"; return; }
    if (chdir(cwd.c_str()) < 0) { err = errno; failed = "chdir"; return; }
    if (mount(has_source ? source.c_str() : nullptr, target.c_str(),
              has_fstype ? fstype.c_str() : nullptr, flags, has_data ? data.c_str() : nullptr) < 0) {
      err = errno;
      failed = "mount";
    }
  });
  worker.join();
  if (failed) throw errno_error(env, err, failed, failed[0] == 'm' ? target : cwd);
  return env.Undefined();
}

}  // namespace

void RegisterFsOps(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2, "openat2"));
  exports.Set("mknodat", Napi::Function::New(env, Mknodat, "mknodat"));
  exports.Set("lsetxattr", Napi::Function::New(env, Lsetxattr, "lsetxattr"));
  exports.Set("lgetxattr", Napi::Function::New(env, Lgetxattr, "lgetxattr"));
  exports.Set("llistxattr", Napi::Function::New(env, Llistxattr, "llistxattr"));
  exports.Set("mountIn", Napi::Function::New(env, MountIn, "mountIn"));
  // Open flags differ between architectures (O_DIRECTORY, O_NOFOLLOW on aarch64), so they
  // come from the headers the addon was built with.
  Napi::Object o = Napi::Object::New(env);
  o.Set("O_RDONLY", O_RDONLY);
  o.Set("O_WRONLY", O_WRONLY);
  o.Set("O_RDWR", O_RDWR);
  o.Set("O_CREAT", O_CREAT);
  o.Set("O_EXCL", O_EXCL);
  o.Set("O_TRUNC", O_TRUNC);
  o.Set("O_DIRECTORY", O_DIRECTORY);
  o.Set("O_NOFOLLOW", O_NOFOLLOW);
  o.Set("O_PATH", O_PATH);
  o.Set("O_CLOEXEC", O_CLOEXEC);
  exports.Set("openFlags", o);
}

}  // namespace ctr
