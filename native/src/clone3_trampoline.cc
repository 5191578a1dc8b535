// clone3 with a caller-chosen stack, for a child that shares our memory (CLONE_VM).
//
// After the syscall the child runs on the new stack with the parent's registers, so it must not
// return into the C frame that made the call (that frame lives on the parent's stack, which the
// parent keeps using). This trampoline calls fn(arg) on the new stack and exits with its result.
#include <sys/syscall.h>

#include "raw_syscall.h"

#if defined(__x86_64__)
asm(R"(
  .text
  .globl ctr_clone3_trampoline
  .hidden ctr_clone3_trampoline
  .type ctr_clone3_trampoline,@function
ctr_clone3_trampoline:
  mov %rdx, %r8          # fn  (r8/r9 survive the syscall; rcx/r11 do not)
  mov %rcx, %r9          # arg
  mov $435, %eax         # __NR_clone3
  syscall
  test %rax, %rax
  jnz 1f                 # parent (pid) or error (-errno)
  xor %ebp, %ebp         # child: no frame to unwind into
  and $-16, %rsp
  mov %r9, %rdi
  call *%r8
  mov %eax, %edi
  mov $60, %eax          # __NR_exit
  syscall
  ud2
1:
  ret
  .size ctr_clone3_trampoline, .-ctr_clone3_trampoline
)");
#elif defined(__aarch64__)
asm(R"(
  .text
  .globl ctr_clone3_trampoline
  .hidden ctr_clone3_trampoline
  .type ctr_clone3_trampoline,%function
ctr_clone3_trampoline:
  mov x9, x2             // fn  (the kernel preserves every register but x0)
  mov x10, x3            // arg
  mov x8, #435           // __NR_clone3
  svc #0
  cbnz x0, 1f
  mov x29, xzr
  mov x30, xzr
  mov x0, x10
  blr x9
  mov x8, #93            // __NR_exit
  svc #0
  brk #0
1:
  ret
  .size ctr_clone3_trampoline, .-ctr_clone3_trampoline
)");
#endif
