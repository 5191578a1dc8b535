// mkdirs(paths, mode) / rmdirs(paths) / fsBatch(steps): many file-system syscalls as one thread-pool job.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterDirOps(Napi::Env env, Napi::Object exports);
}
