// Architecture-specific register access. Runs inside signal handlers: async-signal-safe.
#include <sys/syscall.h>
#include <ucontext.h>

#include "arch.h"
#include "pp_thread_id.h"

void pp_regs_from_ucontext(const void *context, pp_regs *out) {
    const ucontext_t *uc = (const ucontext_t *)context;
#if defined(__x86_64__)
    out->pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    out->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    out->fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    out->lr = 0;
#elif defined(__aarch64__)
    out->pc = (uintptr_t)uc->uc_mcontext.pc;
    out->sp = (uintptr_t)uc->uc_mcontext.sp;
    out->fp = (uintptr_t)uc->uc_mcontext.regs[29];
    out->lr = (uintptr_t)uc->uc_mcontext.regs[30];
#else
#error "swift-pprof supports x86_64 and aarch64 only"
#endif
}


int pp_gettid(void) { return (int)pp_syscall0(SYS_gettid); }
