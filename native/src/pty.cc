// Pseudo-terminals for containers run with a TTY: Node cannot open one itself.
#include "pty.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "napi_errors.h"

namespace ctr {
namespace {

// openpty() → { master, slave, path }. Both ends are close-on-exec; the spawn plan moves the
// slave onto the child's 0-2 (which clears the flag there) and makes it the controlling tty.
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) throw errno_error(env, errno, "posix_openpt", "/dev/ptmx");
  char name[128];
  int slave = -1;
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0 ||
      (slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
    int err = errno;
    close(master);
    throw errno_error(env, err, "openpty", "/dev/ptmx");
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("master", master);
  r.Set("slave", slave);
  r.Set("path", name);
  return r;
}

// TIOCSWINSZ: the terminal size the program inside sees (and SIGWINCH for its foreground group).
Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "setWinsize(fd, columns, rows) takes numbers");
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct winsize ws = {};
  ws.ws_col = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  ws.ws_row = (unsigned short)info[2].As<Napi::Number>().Uint32Value();
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) throw errno_error(env, errno, "ioctl(TIOCSWINSZ)", "");
  return env.Undefined();
}

}  // namespace

void RegisterPty(Napi::Env env, Napi::Object exports) {
  exports.Set("openpty", Napi::Function::New(env, OpenPty, "openpty"));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize, "setWinsize"));
}

}  // namespace ctr
