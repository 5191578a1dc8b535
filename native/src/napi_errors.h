// Errors thrown to JavaScript by the primitives: Node fs-style (code, errno, syscall, path).
#pragma once
#include <napi.h>
#include <string.h>

#include <string>

namespace ctr {

inline const char* errno_name(int err) {
  const char* n = strerrorname_np(err);
  return n ? n : "EUNKNOWN";
}

// An Error carrying code (the errno name), errno, syscall and path, as Node's fs errors do.
inline Napi::Error errno_error(Napi::Env env, int err, const std::string& syscall_name,
                               const std::string& path) {
  std::string msg = syscall_name;
  if (!path.empty()) msg += " " + path;
  msg += ": " + std::string(errno_name(err)) + " (" + strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", errno_name(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", syscall_name);
  if (!path.empty()) e.Set("path", path);
  return e;
}

}  // namespace ctr
