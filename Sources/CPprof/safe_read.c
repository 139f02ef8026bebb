// Fault-safe reads. pp_page_is_readable, pp_safe_read_word(_recovering), pp_faults_recoverable_here,
// pp_fault_recovery_active and recovery_handler run inside signal handlers and hooks
// (recovery_handler is itself the SIGSEGV/SIGBUS handler) and are async-signal-safe;
// pp_fault_recovery_enable and pp_fault_recovery_set_allowed do not run there.
//
// Measured on the 2-core x86_64 VM (pprof-bench unwind): a probe costs one system call (~0.2 µs),
// paid once per distinct page a walk touches; a recoverable load costs nothing extra unless it
// faults; whether our handler still receives SIGSEGV is checked with one system call at most once
// per clock tick (a few ms), not per walk. Walks use recovery whenever it is safe and probes
// otherwise.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pp_unwind.h"
#include "pp_unwind_tables.h"
#include "safe_read.h"

// --- Probes ----------------------------------------------------------------------------------

// rt_sigprocmask copies the new set from user memory before it validates `how`, so with an invalid
// `how` it fails with EFAULT exactly when the memory is unreadable (EINVAL otherwise). Checked at
// enable time against a PROT_NONE page; if a kernel ever behaved differently, process_vm_readv on
// ourselves is used instead.
static int probe_uses_process_vm_readv;

int pp_page_is_readable(uintptr_t address) {
    if (!__atomic_load_n(&probe_uses_process_vm_readv, __ATOMIC_RELAXED)) {
        return pp_syscall4(SYS_rt_sigprocmask, ~0L, address & ~(uintptr_t)7, 0, 8) != -EFAULT;
    }
    char byte;
    struct iovec local = {&byte, 1};
    struct iovec remote = {(void *)address, 1};
    long pid = pp_syscall0(SYS_getpid);
    return pp_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0) == 1;
}

int pp_safe_read_word(uintptr_t address, uintptr_t *value) { return pp_safe_read_word_recovering(address, value, 0); }

int pp_safe_read_word_recovering(uintptr_t address, uintptr_t *value, int recover) {
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, recover);
    return pp_safe_read(&reader, address, value);
}

int pp_faults_recoverable_here(void) {
    uint64_t mask = ~0ull;
    return pp_fault_recovery_active() && pp_syscall4(SYS_rt_sigprocmask, SIG_BLOCK, 0, &mask, 8) == 0 &&
           !pp_mask_blocks_faults(mask);
}

static void check_probe(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *guard = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED) return;
    long result = pp_syscall4(SYS_rt_sigprocmask, ~0L, (long)guard, 0, 8);
    if (result != -EFAULT) __atomic_store_n(&probe_uses_process_vm_readv, 1, __ATOMIC_RELAXED);
    munmap(guard, (size_t)page);
}

// --- Recovery --------------------------------------------------------------------------------

enum { NOT_INSTALLED, INSTALLED, DISPLACED };

static int recovery_state = NOT_INSTALLED;
static int recovery_allowed = 1;
static struct sigaction previous_segv, previous_bus;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static void recovery_handler(int signo, siginfo_t *info, void *context);

// Whether SIGSEGV still reaches recovery_handler. A handler installed over ours after
// pp_fault_recovery_enable (a crash reporter, another language runtime) would take a walker's
// recoverable fault for a crash and end the process. One raw rt_sigaction, done at most once per
// tick of the coarse monotonic clock (vDSO, no system call): per walk it doubled a CPU sample's
// cost. A handler installed over ours is noticed within a few ms.
static uint64_t last_check_tick;  // coarse clock in ns + 1 of the last successful check; 0 = never

static uint64_t coarse_now(void) {
    struct timespec now = {0, 0};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);  // vDSO; async-signal-safe, leaves errno alone
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec + 1;
}

static int still_installed(void) {
    uint64_t now = coarse_now();
    if (__atomic_load_n(&last_check_tick, __ATOMIC_RELAXED) == now) return 1;
    uintptr_t action[4] = {0, 0, 0, 0};  // the kernel's sigaction: the handler comes first
    if (pp_syscall4(SYS_rt_sigaction, SIGSEGV, 0, action, 8) != 0) return 0;
    if (action[0] != (uintptr_t)recovery_handler) return 0;
    __atomic_store_n(&last_check_tick, now, __ATOMIC_RELAXED);
    return 1;
}

int pp_fault_recovery_active(void) {
    if (__atomic_load_n(&recovery_state, __ATOMIC_ACQUIRE) != INSTALLED ||
        !__atomic_load_n(&recovery_allowed, __ATOMIC_RELAXED))
        return 0;
    if (still_installed()) return 1;
    // Displaced: probe from now on (as pp_fault_recovery_enable would decide).
    int expected = INSTALLED;
    __atomic_compare_exchange_n(&recovery_state, &expected, DISPLACED, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    return 0;
}

static uint64_t recovered_faults;

uint64_t pp_fault_recovery_count(void) { return __atomic_load_n(&recovered_faults, __ATOMIC_RELAXED); }

static void recovery_handler(int signo, siginfo_t *info, void *context) {
    if (pp_arch_recover_fault(context)) {
        __atomic_add_fetch(&recovered_faults, 1, __ATOMIC_RELAXED);
        return;
    }
    // Not ours: behave exactly as the handler we replaced would have.
    const struct sigaction *previous = signo == SIGBUS ? &previous_bus : &previous_segv;
    if (previous->sa_flags & SA_SIGINFO) {
        previous->sa_sigaction(signo, info, context);
    } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
        previous->sa_handler(signo);
    } else {
        // Default action: restore it and raise the signal again, so a hardware fault re-executes
        // into the default action and a sent signal still terminates, with the original state.
        int saved_errno = errno;
        struct sigaction fallback;
        memset(&fallback, 0, sizeof fallback);
        fallback.sa_handler = SIG_DFL;
        sigaction(signo, &fallback, NULL);
        pp_syscall3(SYS_tgkill, pp_syscall0(SYS_getpid), pp_syscall0(SYS_gettid), signo);
        errno = saved_errno;
    }
}

static int is_ours(const struct sigaction *action) {
    return (action->sa_flags & SA_SIGINFO) && action->sa_sigaction == recovery_handler;
}

static int install(int signo, struct sigaction *previous) {
    struct sigaction current;
    if (sigaction(signo, NULL, &current) != 0) return 0;
    if (is_ours(&current)) return 1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = recovery_handler;
    // Keep what the replaced handler relied on: its alternate stack (stack overflows), its mask
    // and whether nested faults are delivered.
    action.sa_flags = SA_SIGINFO | SA_RESTART | (current.sa_flags & (SA_ONSTACK | SA_NODEFER));
    action.sa_mask = current.sa_mask;
    *previous = current;
    return sigaction(signo, &action, NULL) == 0;
}

int pp_fault_recovery_enable(void) {
    (void)coarse_now();  // binds clock_gettime here, not lazily inside a handler
    pthread_mutex_lock(&install_lock);
    int state = __atomic_load_n(&recovery_state, __ATOMIC_ACQUIRE);
    if (state == NOT_INSTALLED) {
        check_probe();
        int ok = install(SIGSEGV, &previous_segv) && install(SIGBUS, &previous_bus);
        // If only one got installed, leave it (it chains correctly) but do not rely on it.
        state = ok ? INSTALLED : DISPLACED;
    } else if (state == INSTALLED) {
        // Someone installed a handler over ours. Re-installing could make a chain that loops back
        // to us, so give recovery up for good and probe instead.
        struct sigaction segv, bus;
        if (sigaction(SIGSEGV, NULL, &segv) != 0 || sigaction(SIGBUS, NULL, &bus) != 0 || !is_ours(&segv) ||
            !is_ours(&bus)) {
            state = DISPLACED;
        }
    }
    __atomic_store_n(&recovery_state, state, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&install_lock);
    return pp_fault_recovery_active();
}

void pp_fault_recovery_set_allowed(int allowed) {
    __atomic_store_n(&recovery_allowed, allowed ? 1 : 0, __ATOMIC_RELAXED);
}
