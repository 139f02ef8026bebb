// The registers a stack walk starts from (see arch.h for everything architecture-specific).
#ifndef PP_ARCH_H
#define PP_ARCH_H

#include <stdint.h>

// `lr` is the link register on aarch64 (0 on x86_64).
typedef struct pp_regs {
    uintptr_t pc;
    uintptr_t sp;
    uintptr_t fp;
    uintptr_t lr;
} pp_regs;

// Fills `out` from a signal handler's ucontext_t. Async-signal-safe.
void pp_regs_from_ucontext(const void *context, pp_regs *out);

#endif
