// Netlink sockets for rtnetlink: opened (optionally inside another network namespace) and
// driven request by request. Messages are built and parsed in TypeScript.
#pragma once
#include <napi.h>

namespace ctr {
void RegisterNetlink(Napi::Env env, Napi::Object exports);
}
