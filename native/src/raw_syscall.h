// Raw system calls that never touch errno.
//
// The spawn child shares the parent's memory (CLONE_VM) until it execs, so it must not write
// anything the parent owns — and glibc's syscall(2) writes errno, which lives in the parent
// thread's TLS. These wrappers return -errno instead and touch nothing but registers.
#pragma once

#include <stdint.h>

namespace ctr::raw {

#if defined(__x86_64__)
static inline long syscall6(long n, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static inline long syscall6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 asm("x8") = n;
  register long x0 asm("x0") = a;
  register long x1 asm("x1") = b;
  register long x2 asm("x2") = c;
  register long x3 asm("x3") = d;
  register long x4 asm("x4") = e;
  register long x5 asm("x5") = f;
  asm volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
#error "ctr's native core supports x86_64 and aarch64"
#endif

template <typename A = long, typename B = long, typename C = long, typename D = long,
          typename E = long, typename F = long>
static inline long sys(long n, A a = 0, B b = 0, C c = 0, D d = 0, E e = 0, F f = 0) {
  return syscall6(n, (long)a, (long)b, (long)c, (long)d, (long)e, (long)f);
}

// True when a raw return value is an error (-4095..-1), as the kernel ABI defines it.
static inline bool failed(long r) { return (unsigned long)r > (unsigned long)-4096L; }

}  // namespace ctr::raw

// Starts a clone3 child on `stack` (which clone_args describes) running fn(arg), then
// exit(fn's return). Returns to the parent like the syscall: child pid or -errno. Defined in
// clone3_trampoline.cc because a C function cannot survive the switch to a new stack.
extern "C" long ctr_clone3_trampoline(void* clone_args, unsigned long size, int (*fn)(void*),
                                      void* arg);
