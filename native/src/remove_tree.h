// removeTree(path): rm -rf on the thread pool, never following links or crossing mounts.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterRemoveTree(Napi::Env env, Napi::Object exports);
}
