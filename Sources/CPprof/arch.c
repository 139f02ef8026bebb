// Architecture-specific register access, the fault-recoverable load and system-call decoding.
// Every function here runs inside signal handlers (profiling, thread-dump and SIGSEGV/SIGBUS
// recovery handlers) and is async-signal-safe.
#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "arch.h"
#include "pp_thread_dump.h"
#include "pp_thread_id.h"
#include "pp_unwind.h"

void pp_regs_from_ucontext(const void *context, pp_regs *out) {
    const ucontext_t *uc = (const ucontext_t *)context;
#if defined(__x86_64__)
    out->pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    out->sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    out->fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    out->lr = 0;
#else
    out->pc = (uintptr_t)uc->uc_mcontext.pc;
    out->sp = (uintptr_t)uc->uc_mcontext.sp;
    out->fp = (uintptr_t)uc->uc_mcontext.regs[29];
    out->lr = (uintptr_t)uc->uc_mcontext.regs[30];
#endif
}

const pp_ucontext_layout pp_ucontext_offsets = {
#if defined(__x86_64__)
    .pc = offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]),
    .sp = offsetof(ucontext_t, uc_mcontext.gregs[REG_RSP]),
    .fp = offsetof(ucontext_t, uc_mcontext.gregs[REG_RBP]),
    .lr = -1,
#else
    .pc = offsetof(ucontext_t, uc_mcontext.pc),
    .sp = offsetof(ucontext_t, uc_mcontext.sp),
    .fp = offsetof(ucontext_t, uc_mcontext.regs[29]),
    .lr = offsetof(ucontext_t, uc_mcontext.regs[30]),
#endif
    .sigmask = offsetof(ucontext_t, uc_sigmask),
};

// The recoverable load: `ok` is set before the load, so a load that completes returns {value, 1};
// the recovery handler resumes a faulting one at the `ret` with both registers cleared.
#if defined(__x86_64__)
__asm__(".text\n"
        ".p2align 4\n"
        ".globl pp_arch_recoverable_load\n"
        ".hidden pp_arch_recoverable_load\n"
        ".type pp_arch_recoverable_load, @function\n"
        "pp_arch_recoverable_load:\n"
        ".cfi_startproc\n"
        "    movl $1, %edx\n"
        "pp_arch_recoverable_load_instruction:\n"
        "    movq (%rdi), %rax\n"
        "pp_arch_recoverable_load_resume:\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size pp_arch_recoverable_load, . - pp_arch_recoverable_load\n");
#else
__asm__(".text\n"
        ".p2align 4\n"
        ".globl pp_arch_recoverable_load\n"
        ".hidden pp_arch_recoverable_load\n"
        ".type pp_arch_recoverable_load, %function\n"
        "pp_arch_recoverable_load:\n"
        ".cfi_startproc\n"
        "    mov x1, #1\n"
        "pp_arch_recoverable_load_instruction:\n"
        "    ldr x0, [x0]\n"
        "pp_arch_recoverable_load_resume:\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size pp_arch_recoverable_load, . - pp_arch_recoverable_load\n");
#endif

extern const char pp_arch_recoverable_load_instruction[] __attribute__((visibility("hidden")));
extern const char pp_arch_recoverable_load_resume[] __attribute__((visibility("hidden")));

int pp_arch_recover_fault(void *context) {
    ucontext_t *uc = (ucontext_t *)context;
#if defined(__x86_64__)
    if ((uintptr_t)uc->uc_mcontext.gregs[REG_RIP] != (uintptr_t)pp_arch_recoverable_load_instruction) return 0;
    uc->uc_mcontext.gregs[REG_RAX] = 0;
    uc->uc_mcontext.gregs[REG_RDX] = 0;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)pp_arch_recoverable_load_resume;
#else
    if ((uintptr_t)uc->uc_mcontext.pc != (uintptr_t)pp_arch_recoverable_load_instruction) return 0;
    uc->uc_mcontext.regs[0] = 0;
    uc->uc_mcontext.regs[1] = 0;
    uc->uc_mcontext.pc = (uintptr_t)pp_arch_recoverable_load_resume;
#endif
    return 1;
}

// Reads the byte at `address` through the fault-safe word reader.
static int read_code_byte(uintptr_t address, uint8_t *byte) {
    uintptr_t word;
    if (!pp_safe_read_word(address & ~(uintptr_t)7, &word)) return 0;
    *byte = (uint8_t)(word >> (8 * (address & 7)));
    return 1;
}

// What the interrupted registers say of system calls (PP_IN_SYSCALL, PP_RETURNED_FROM_SYSCALL,
// PP_NO_SYSCALL_SEEN): blocked in one when it is rewound for restart, or just returned -EINTR
// because this very signal interrupted it (nanosleep, epoll_wait, poll...). Runs in handlers.
int pp_arch_interrupted_in_syscall(const void *context) {
    if (pp_arch_interrupted_syscall(context) >= 0) return PP_IN_SYSCALL;
    const ucontext_t *uc = (const ucontext_t *)context;
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    long rax = (long)uc->uc_mcontext.gregs[REG_RAX];
    uint8_t b0, b1;
    if (!read_code_byte(pc - 2, &b0) || !read_code_byte(pc - 1, &b1) || b0 != 0x0f || b1 != 0x05) {
        return PP_NO_SYSCALL_SEEN;
    }
    return rax == -EINTR ? PP_IN_SYSCALL : PP_RETURNED_FROM_SYSCALL;
#else
    // pp_arch_interrupted_syscall already accepts `svc` just before the pc with x0 == -EINTR.
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    uint8_t b[4];
    for (int i = 0; i < 4; i++) {
        if (!read_code_byte(pc - 4 + i, &b[i])) return PP_NO_SYSCALL_SEEN;
    }
    uint32_t instruction = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return instruction == 0xd4000001u ? PP_RETURNED_FROM_SYSCALL : PP_NO_SYSCALL_SEEN;
#endif
}

long pp_arch_interrupted_syscall(const void *context) {
    const ucontext_t *uc = (const ucontext_t *)context;
#if defined(__x86_64__)
    // A blocking call the kernel will restart (SA_RESTART) is rewound onto its `syscall`
    // instruction (0f 05) with rax holding the call number again.
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    long rax = (long)uc->uc_mcontext.gregs[REG_RAX];
    uint8_t b0, b1;
    if (!read_code_byte(pc, &b0) || !read_code_byte(pc + 1, &b1)) return -1;
    if (b0 == 0x0f && b1 == 0x05 && rax >= 0 && rax < 1024) return rax;
    return -1;
#else
    // aarch64 keeps the call number in x8; the pc is on `svc #0` (restart) or just after it.
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    long x8 = (long)uc->uc_mcontext.regs[8];
    for (int back = 0; back <= 4; back += 4) {
        uint8_t b[4];
        int ok = 1;
        for (int i = 0; i < 4 && ok; i++) ok = read_code_byte(pc - back + i, &b[i]);
        uint32_t instruction = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (ok && instruction == 0xd4000001u) {
            if (back == 0 || (long)uc->uc_mcontext.regs[0] == -EINTR) return (x8 >= 0 && x8 < 1024) ? x8 : -1;
        }
    }
    return -1;
#endif
}

int pp_gettid(void) { return (int)pp_syscall0(SYS_gettid); }
