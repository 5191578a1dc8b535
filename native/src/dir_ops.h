// mkdirs(paths, mode) / rmdirs(paths): many directory syscalls as one thread-pool job.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterDirOps(Napi::Env env, Napi::Object exports);
}
