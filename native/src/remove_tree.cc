// removeTree: `rm -rf` of a directory as one job on the thread pool, for throwaway trees
// (a container's upper directory). Node's fs.rm walks a tree with several thread-pool trips
// and promise turns per entry, which a container's exit pays for dozens of entries.
//
// It never follows a symbolic link and never crosses into another mount: a directory whose
// mount id (statx STATX_MNT_ID) differs from the root's is a mount point — a bind mount of
// the same file system included, which a device number would miss — and the removal stops
// with EBUSY naming it, before touching anything below it.
#include "remove_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "napi_errors.h"

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

namespace ctr {
namespace {

// Deeper trees are refused (ELOOP) rather than holding one descriptor per level: the caller
// falls back to a slower walker for them.
constexpr int kMaxDepth = 200;

struct Failure {
  int err = 0;
  std::string syscall;
  std::string path;
};

bool mount_id_at(int dirfd, const char* name, uint64_t* id, Failure* f, const std::string& path) {
  struct statx stx;
  if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_MNT_ID | STATX_TYPE, &stx) < 0) {
    *f = {errno, "statx", path};
    return false;
  }
  if (!(stx.stx_mask & STATX_MNT_ID)) {
    *f = {ENOSYS, "statx", path};  // kernel before 5.8: the caller falls back
    return false;
  }
  *id = stx.stx_mnt_id;
  return true;
}

// Empties the directory open as `fd` (which it closes), whose path is `path`.
bool empty_dir(int fd, const std::string& path, uint64_t root_mnt, int depth, Failure* f) {
  if (depth > kMaxDepth) {
    close(fd);
    *f = {ELOOP, "openat", path};
    return false;
  }
  DIR* d = fdopendir(fd);
  if (!d) {
    *f = {errno, "fdopendir", path};
    close(fd);
    return false;
  }
  bool ok = true;
  for (;;) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (!e) {
      if (errno) {
        *f = {errno, "readdir", path};
        ok = false;
      }
      break;
    }
    const char* name = e->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    std::string child = path + "/" + name;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;
        *f = {errno, "fstatat", child};
        ok = false;
        break;
      }
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir) {
      uint64_t mnt = 0;
      if (!mount_id_at(dirfd(d), name, &mnt, f, child)) {
        ok = false;
        break;
      }
      if (mnt != root_mnt) {
        *f = {EBUSY, "rmdir", child};  // a mount point: never descend into it
        ok = false;
        break;
      }
      int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        *f = {errno, "openat", child};
        ok = false;
        break;
      }
      if (!empty_dir(sub, child, root_mnt, depth + 1, f)) {
        ok = false;
        break;
      }
      if (unlinkat(dirfd(d), name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
        *f = {errno, "rmdir", child};
        ok = false;
        break;
      }
    } else if (unlinkat(dirfd(d), name, 0) < 0 && errno != ENOENT) {
      *f = {errno, "unlink", child};
      ok = false;
      break;
    }
  }
  closedir(d);
  return ok;
}

class RemoveTreeWorker : public Napi::AsyncWorker {
 public:
  RemoveTreeWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "ctr:removeTree"), deferred_(env), path_(std::move(path)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    struct stat st;
    if (lstat(path_.c_str(), &st) < 0) {
      if (errno != ENOENT) failure_ = {errno, "lstat", path_};
      return;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (unlink(path_.c_str()) < 0 && errno != ENOENT) failure_ = {errno, "unlink", path_};
      return;
    }
    uint64_t root_mnt = 0;
    if (!mount_id_at(AT_FDCWD, path_.c_str(), &root_mnt, &failure_, path_)) return;
    int fd = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      failure_ = {errno, "open", path_};
      return;
    }
    if (!empty_dir(fd, path_, root_mnt, 0, &failure_)) return;
    if (rmdir(path_.c_str()) < 0 && errno != ENOENT) failure_ = {errno, "rmdir", path_};
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err) {
      deferred_.Reject(errno_error(env, failure_.err, failure_.syscall, failure_.path).Value());
    } else {
      deferred_.Resolve(env.Undefined());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  Failure failure_;
};

Napi::Value RemoveTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "path must be an absolute path without NUL bytes");
  auto* w = new RemoveTreeWorker(env, std::move(path));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void RegisterRemoveTree(Napi::Env env, Napi::Object exports) {
  exports.Set("removeTree", Napi::Function::New(env, RemoveTree, "removeTree"));
}

}  // namespace ctr
