// Everything that depends on the CPU architecture lives here: registers of an interrupted context,
// return-address signing, frame-record and signal-frame layout, the fault-recoverable load and
// raw system calls. Supported: x86_64 and aarch64 Linux. All functions
// here are async-signal-safe.
#ifndef PP_ARCH_INTERNAL_H
#define PP_ARCH_INTERNAL_H

#include <stdint.h>

#include "pp_arch.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "swift-pprof supports x86_64 and aarch64 Linux only"
#endif

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

// Frame records ({saved fp, return address}, 16 bytes) are at least word-aligned on both ABIs;
// a frame pointer that is not is garbage.
#define PP_FRAME_ALIGNMENT 8
#define PP_WORD 8

// A frame record is {caller's fp, return address} at fp. On x86_64 it sits right below the return
// address pushed by `call`, so the caller's stack pointer is exactly fp + 16; on aarch64 the record
// may sit anywhere in the frame, so fp + 16 is only a lower bound.
#define PP_FRAME_RECORD_SIZE 16
#if defined(__x86_64__)
#define PP_FRAME_RECORD_GIVES_EXACT_SP 1
#else
#define PP_FRAME_RECORD_GIVES_EXACT_SP 0
#endif

// Swift async functions keep their async context in the word just below the frame record
// ("extended frame record"; on Linux the bit-60 marker in the saved fp is never set).
#define PP_ASYNC_CONTEXT_OFFSET (-8)

// The caller's frame registers, for walking the current thread's own stack.
#define PP_CURRENT_REGS(regs)                                           \
    do {                                                                \
        (regs).pc = (uintptr_t)__builtin_return_address(0);            \
        (regs).fp = (uintptr_t)__builtin_frame_address(0);             \
        (regs).sp = (uintptr_t)__builtin_frame_address(0);             \
        (regs).lr = 0;                                                  \
    } while (0)

// Where a signal handler's ucontext_t lies, given the stack pointer of the frame that the signal
// trampoline returns into (the CFA of the handler's frame): x86_64 rt_sigframe is
// {pretcode, ucontext, siginfo} and `ret` pops pretcode; aarch64 rt_sigframe is {siginfo, ucontext}.
#if defined(__x86_64__)
#define PP_SIGNAL_FRAME_UCONTEXT_OFFSET 0
#else
#define PP_SIGNAL_FRAME_UCONTEXT_OFFSET 128
#endif

// Byte offsets of pc, sp, fp, lr (or -1) and the blocked-signal mask inside a ucontext_t, so that a
// ucontext found on the stack can be read word by word with fault-safe loads.
typedef struct pp_ucontext_layout {
    int pc, sp, fp, lr, sigmask;
} pp_ucontext_layout;
extern const pp_ucontext_layout pp_ucontext_offsets;

// What the registers of a thread interrupted by a signal say of system calls: PP_IN_SYSCALL,
// PP_RETURNED_FROM_SYSCALL or PP_NO_SYSCALL_SEEN (pp_thread_dump.h); *number is the call it is
// blocked in when known (the kernel rewinds a restartable call onto its instruction), else -1.
int pp_arch_interrupted_syscall(const void *ucontext, long *number);

// A load that never crashes: a fault inside it is recovered by pp_fault_recovery's SIGSEGV/SIGBUS
// handler, which makes it return {0, 0}. Only valid while that handler is installed.
typedef struct pp_recoverable_load_result {
    uintptr_t value;
    uintptr_t ok;
} pp_recoverable_load_result;
pp_recoverable_load_result pp_arch_recoverable_load(uintptr_t address);

// If `ucontext` faulted on the instruction of pp_arch_recoverable_load, rewrites it so that the
// load returns {0, 0}, and returns 1; else returns 0.
int pp_arch_recover_fault(void *ucontext);

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
