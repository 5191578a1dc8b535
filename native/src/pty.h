// openpty and window sizes for containers with a terminal.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterPty(Napi::Env env, Napi::Object exports);
}
