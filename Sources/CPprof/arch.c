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
#include "safe_read.h"

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

// The code bytes around an interrupted pc: window[i] is the byte at pc - 4 + i. Two aligned words
// through one fault-safe reader (one page probe, two at a page boundary).
static int read_code_window(uintptr_t pc, uint8_t window[8]) {
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, 0);
    uintptr_t start = pc - 4, first = start & ~(uintptr_t)7;
    uintptr_t words[2];
    if (!pp_safe_read(&reader, first, &words[0]) || !pp_safe_read(&reader, first + 8, &words[1])) return 0;
    for (int i = 0; i < 8; i++) {
        uintptr_t offset = start - first + (uintptr_t)i;
        window[i] = (uint8_t)(words[offset / 8] >> (8 * (offset % 8)));
    }
    return 1;
}

// What the interrupted registers say of system calls (PP_IN_SYSCALL, PP_RETURNED_FROM_SYSCALL,
// PP_NO_SYSCALL_SEEN), and in *number the call a blocked thread is in (-1 when not known). Blocked
// means rewound onto the system-call instruction for restart (the number is known), or just
// returned -EINTR because this very signal interrupted it (nanosleep, epoll_wait, poll...; on
// x86_64 the number is then lost). Runs in handlers.
int pp_arch_interrupted_syscall(const void *context, long *number) {
    const ucontext_t *uc = (const ucontext_t *)context;
    *number = -1;
    uint8_t code[8];
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    long rax = (long)uc->uc_mcontext.gregs[REG_RAX];
    if (!read_code_window(pc, code)) return PP_NO_SYSCALL_SEEN;
    // A restartable call (SA_RESTART) is rewound onto its `syscall` (0f 05), rax holding its number.
    if (code[4] == 0x0f && code[5] == 0x05 && rax >= 0 && rax < 1024) {
        *number = rax;
        return PP_IN_SYSCALL;
    }
    if (code[2] != 0x0f || code[3] != 0x05) return PP_NO_SYSCALL_SEEN;
    return rax == -EINTR ? PP_IN_SYSCALL : PP_RETURNED_FROM_SYSCALL;
#else
    // aarch64 keeps the call number in x8; the pc is on `svc #0` (restart) or just after it.
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    long x8 = (long)uc->uc_mcontext.regs[8];
    if (!read_code_window(pc, code)) return PP_NO_SYSCALL_SEEN;
    for (int back = 0; back <= 4; back += 4) {
        const uint8_t *b = code + 4 - back;
        uint32_t instruction = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        if (instruction != 0xd4000001u) continue;
        if (back == 0 || (long)uc->uc_mcontext.regs[0] == -EINTR) {
            if (x8 >= 0 && x8 < 1024) *number = x8;
            return PP_IN_SYSCALL;
        }
        return PP_RETURNED_FROM_SYSCALL;
    }
    return PP_NO_SYSCALL_SEEN;
#endif
}

int pp_gettid(void) { return (int)pp_syscall0(SYS_gettid); }
