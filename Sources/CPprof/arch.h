// Everything that depends on the CPU architecture lives here: registers of an interrupted context,
// return-address signing, the current frame's registers and raw system calls. Supported: x86_64 and
// aarch64 Linux. All functions here are async-signal-safe.
#ifndef PP_ARCH_INTERNAL_H
#define PP_ARCH_INTERNAL_H

#include <stdint.h>

#include "pp_arch.h"


// Removes pointer-authentication bits from a code address (arm64 PAC); identity on x86_64.
static inline uintptr_t pp_strip_pac(uintptr_t address) {
#if defined(__aarch64__)
    // Linux user space uses at most 52 bits of virtual address; PAC bits live above them.
    return address & ((1ULL << 52) - 1);
#else
    return address;
#endif
}

// A pause for spin-wait loops.
static inline void pp_cpu_relax(void) {
#if defined(__x86_64__)
    __asm__ volatile("pause");
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

// Frame records are 16-byte aligned on both architectures' ABIs; an odd frame pointer is garbage.
#define PP_FRAME_ALIGNMENT 8

// The caller's frame registers, for walking the current thread's own stack.
#define PP_CURRENT_REGS(regs)                                           \
    do {                                                                \
        (regs).pc = (uintptr_t)__builtin_return_address(0);            \
        (regs).fp = (uintptr_t)__builtin_frame_address(0);             \
        (regs).sp = (uintptr_t)__builtin_frame_address(0);             \
        (regs).lr = 0;                                                  \
    } while (0)

// Raw system calls: no errno, no PLT (lazy binding must never run in a handler).
static inline long pp_syscall6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#endif
}

#define pp_syscall0(n) pp_syscall6((n), 0, 0, 0, 0, 0, 0)
#define pp_syscall1(n, a) pp_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define pp_syscall2(n, a, b) pp_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define pp_syscall3(n, a, b, c) pp_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define pp_syscall4(n, a, b, c, d) pp_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

#endif
