// File-system primitives Node's fs lacks: openat2 (RESOLVE_IN_ROOT for safe unpacking),
// mknodat, the l*xattr family, and mount(2) with a private working directory.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterFsOps(Napi::Env env, Napi::Object exports);
}
