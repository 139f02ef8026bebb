// The stack walker. Every function in this file may run inside a signal handler or a malloc/lock
// hook, and is async-signal-safe: no allocation, no locks, no libc calls, fault-safe reads only,
// bounded loops. pp_unwind_tables_publish is the only one called from ordinary code.
#include <signal.h>
#include <stddef.h>
#include <sys/syscall.h>

#include "arch.h"
#include "pp_unwind.h"
#include "pp_unwind_tables.h"
#include "safe_read.h"

static const pp_unwind_tables *published_tables;

void pp_unwind_tables_publish(const pp_unwind_tables *tables) {
    __atomic_store_n(&published_tables, tables, __ATOMIC_RELEASE);
}

const pp_unwind_tables *pp_unwind_tables_current(void) {
    return __atomic_load_n(&published_tables, __ATOMIC_ACQUIRE);
}

// A caller's frame lies above its callee's, and at most this far: anything else is a broken chain.
#define MAX_FRAME_SIZE ((uintptr_t)8 << 20)
// Async context chains are heap lists; cap them in case one loops.
#define MAX_ASYNC_FRAMES 1024

// One frame of the walk: where execution is in it, and its registers.
typedef struct frame {
    // A return address, or an interrupted instruction when `interrupted` is set.
    uintptr_t pc;
    // The frame's stack pointer (its callee's CFA); 0 when unknown.
    uintptr_t sp;
    uintptr_t fp;
    // The link register, meaningful only in an interrupted frame (aarch64).
    uintptr_t lr;
    int interrupted;
    // Whether sp is exact rather than a lower bound (only exact values can base a CFA).
    int sp_exact;
} frame;

typedef struct walk {
    const pp_unwind_tables *tables;
    // Consecutive frames are mostly in the same image: try the last one found first.
    const pp_unwind_image *last_image;
    pp_safe_reader reader;
    uintptr_t *pcs;
    int count;
    int max;
    int skip;
    unsigned result;
} walk;

enum step_result {
    STEP_OK,
    // The stack ends here (outermost frame, zero return address or frame pointer).
    STEP_END,
    // The frame cannot be unwound.
    STEP_FAILED,
    // The unwind row cannot be applied; try the fallback.
    STEP_UNSUPPORTED,
};

// --- Table lookups ---------------------------------------------------------------------------

static const pp_unwind_image *find_image(const pp_unwind_tables *tables, uintptr_t address) {
    uint32_t low = 0, high = tables->image_count;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        if (tables->images[mid].start <= address) low = mid + 1;
        else high = mid;
    }
    if (low == 0) return NULL;
    const pp_unwind_image *image = &tables->images[low - 1];
    return address < image->end ? image : NULL;
}

static const pp_unwind_rule *find_rule(const pp_unwind_image *image, uintptr_t address) {
    if (image->row_count == 0 || !image->row_addresses || !image->row_rules || !image->rules || !image->row_index) {
        return NULL;
    }
    uintptr_t offset = address - image->start;
    uintptr_t granule = offset >> PP_UNWIND_GRANULE_SHIFT;
    uint32_t low = image->row_index[granule];
    uint32_t high = image->row_index[granule + 1];
    if (high >= image->row_count) high = image->row_count - 1;
    if (low > high) return NULL;
    // The last row in [low, high] starting at or before offset (branch-free: the comparisons are
    // unpredictable).
    const uint32_t *base = &image->row_addresses[low];
    uint32_t length = high - low + 1;
    while (length > 1) {
        uint32_t half = length / 2;
        base = base[half] <= offset ? base + half : base;
        length -= half;
    }
    if (*base > offset) return NULL;
    const pp_unwind_rule *rule = &image->rules[image->row_rules[base - image->row_addresses]];
    return rule->cfa_rule == PP_CFA_NONE ? NULL : rule;
}

static int granule_is_set(const uint8_t *bitmap, const pp_unwind_image *image, uintptr_t address) {
    uintptr_t granule = (address - image->start) >> PP_UNWIND_GRANULE_SHIFT;
    return bitmap && (bitmap[granule >> 3] & (1u << (granule & 7)));
}

static int in_funclet(const pp_unwind_image *image, uintptr_t address) {
    if (image->funclet_count == 0 || !image->funclets) return 0;
    if (!granule_is_set(image->funclet_granules, image, address)) return 0;
    uintptr_t offset = address - image->start;
    uint32_t low = 0, high = image->funclet_count;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        if (image->funclets[2 * mid] <= offset) low = mid + 1;
        else high = mid;
    }
    return low > 0 && offset < image->funclets[2 * (low - 1) + 1];
}

static const pp_unwind_image *image_at(walk *w, uintptr_t address) {
    if (!w->tables) return NULL;
    const pp_unwind_image *last = w->last_image;
    if (last && address - last->start < last->end - last->start) return last;
    const pp_unwind_image *image = find_image(w->tables, address);
    if (image) w->last_image = image;
    return image;
}

// A return address must point into a loaded image (when the tables know them).
static int is_code(walk *w, uintptr_t return_address) {
    return !w->tables || image_at(w, return_address - 1) != NULL;
}

// --- Steps -----------------------------------------------------------------------------------

// Follows the frame record at fp: {caller's fp, return address}.
static int step_frame_record(walk *w, const frame *f, frame *caller) {
    uintptr_t fp = f->fp;
    if (fp == 0) return STEP_END;
    if ((fp & (PP_FRAME_ALIGNMENT - 1)) != 0) return STEP_FAILED;
    // The record lies within this frame: at or above its stack pointer, not absurdly far.
    if (f->sp && (fp < f->sp || fp - f->sp > MAX_FRAME_SIZE)) return STEP_FAILED;
    uintptr_t caller_fp, return_address;
    if (!pp_safe_read(&w->reader, fp, &caller_fp)) return STEP_FAILED;
    if (!pp_safe_read(&w->reader, fp + PP_WORD, &return_address)) return STEP_FAILED;
    caller->pc = pp_strip_pac(return_address);
    caller->fp = caller_fp;
    caller->sp = fp + PP_FRAME_RECORD_SIZE;
    caller->sp_exact = PP_FRAME_RECORD_GIVES_EXACT_SP;
    caller->lr = 0;
    caller->interrupted = 0;
    return STEP_OK;
}

// The trampoline a signal handler returns through: the interrupted context is on the stack.
static int step_signal_frame(walk *w, const frame *f, frame *caller) {
    if (!f->sp || !f->sp_exact) return STEP_FAILED;
    uintptr_t context = f->sp + PP_SIGNAL_FRAME_UCONTEXT_OFFSET;
    uintptr_t pc, sp, fp, lr = 0;
    if (!pp_safe_read(&w->reader, context + (uintptr_t)pp_ucontext_offsets.pc, &pc) ||
        !pp_safe_read(&w->reader, context + (uintptr_t)pp_ucontext_offsets.sp, &sp) ||
        !pp_safe_read(&w->reader, context + (uintptr_t)pp_ucontext_offsets.fp, &fp)) {
        return STEP_FAILED;
    }
    if (pp_ucontext_offsets.lr >= 0 &&
        !pp_safe_read(&w->reader, context + (uintptr_t)pp_ucontext_offsets.lr, &lr)) {
        return STEP_FAILED;
    }
    caller->pc = pp_strip_pac(pc);
    caller->sp = sp;
    caller->fp = fp;
    caller->lr = pp_strip_pac(lr);
    caller->interrupted = 1;
    caller->sp_exact = 1;
    return STEP_OK;
}

static int step_row(walk *w, const frame *f, const pp_unwind_rule *row, frame *caller) {
    uintptr_t cfa;
    intptr_t cfa_offset = (intptr_t)row->cfa_offset * PP_WORD;
    switch (row->cfa_rule) {
    case PP_CFA_SP:
        if (!f->sp || !f->sp_exact) return STEP_UNSUPPORTED;
        cfa = f->sp + (uintptr_t)cfa_offset;
        break;
    case PP_CFA_FP:
        if (!f->fp) return STEP_UNSUPPORTED;
        cfa = f->fp + (uintptr_t)cfa_offset;
        break;
    case PP_CFA_OUTERMOST:
        return STEP_END;
    case PP_CFA_SIGNAL_FRAME:
        return step_signal_frame(w, f, caller);
    default:
        return STEP_UNSUPPORTED;
    }
    // The caller's frame is above this one (an aarch64 leaf may not have moved sp yet).
    if (f->sp && (cfa < f->sp || cfa - f->sp > MAX_FRAME_SIZE)) return STEP_FAILED;
    if (f->sp && cfa == f->sp && !f->interrupted) return STEP_FAILED;
    uintptr_t return_address;
    if (row->flags & PP_ROW_RA_IN_LR) {
        if (!f->interrupted) return STEP_UNSUPPORTED;
        return_address = f->lr;
    } else if (!pp_safe_read(&w->reader, cfa + (uintptr_t)((intptr_t)row->ra_offset * PP_WORD), &return_address)) {
        return STEP_FAILED;
    }
    uintptr_t caller_fp = f->fp;
    if ((row->flags & PP_ROW_FP_SAVED) &&
        !pp_safe_read(&w->reader, cfa + (uintptr_t)((intptr_t)row->fp_offset * PP_WORD), &caller_fp)) {
        return STEP_FAILED;
    }
    caller->pc = pp_strip_pac(return_address);
    caller->sp = cfa;
    caller->sp_exact = 1;
    caller->fp = caller_fp;
    caller->lr = 0;
    caller->interrupted = 0;
    return STEP_OK;
}

// An interrupted frame without usable rows (code without .eh_frame, PLT stubs, unknown code):
// its frame record if that leads back into code, else the return address where a call left it
// (top of stack on x86_64, the link register on aarch64), if that is code.
static int step_interrupted_fallback(walk *w, const frame *f, frame *caller) {
    if (step_frame_record(w, f, caller) == STEP_OK && caller->pc && is_code(w, caller->pc)) return STEP_OK;
    if (!w->tables) return STEP_FAILED;
    uintptr_t return_address;
#if defined(__x86_64__)
    if (!f->sp || !f->sp_exact || !pp_safe_read(&w->reader, f->sp, &return_address)) return STEP_FAILED;
    caller->sp = f->sp + PP_WORD;
#else
    return_address = f->lr;
    caller->sp = f->sp;
#endif
    return_address = pp_strip_pac(return_address);
    if (!return_address || !is_code(w, return_address)) return STEP_FAILED;
    caller->pc = return_address;
    caller->fp = f->fp;
    caller->sp_exact = f->sp_exact;
    caller->lr = 0;
    caller->interrupted = 0;
    return STEP_OK;
}

// --- The walk --------------------------------------------------------------------------------

// Stores one entry (after skipping); returns 0 when `max` is reached.
static int emit(walk *w, uintptr_t entry) {
    if (w->skip > 0) {
        w->skip--;
        return 1;
    }
    if (w->count >= w->max) {
        w->result |= PP_STACK_TRUNCATED;
        return 0;
    }
    w->pcs[w->count++] = entry;
    return 1;
}

// Appends the async callers recorded in the context chain of the funclet frame `f`. Returns 0 if
// the first context is unusable (the physical walk then goes on as if the frame were not async).
static int emit_async_callers(walk *w, const frame *f) {
    uintptr_t context;
    if (!pp_safe_read(&w->reader, f->fp + (uintptr_t)PP_ASYNC_CONTEXT_OFFSET, &context)) return 0;
    for (int depth = 0; depth < MAX_ASYNC_FRAMES; depth++) {
        context = pp_strip_pac(context);
        if (context == 0) return 1;
        uintptr_t parent, resume;
        if (!pp_safe_read(&w->reader, context, &parent) || !pp_safe_read(&w->reader, context + PP_WORD, &resume)) {
            if (depth == 0) return 0;
            w->result |= PP_STACK_INCOMPLETE;
            return 1;
        }
        resume = pp_strip_pac(resume);
        // Resume points are function entries: look up entry - 1 + 1.
        if (resume == 0 || !is_code(w, resume + 1)) {
            if (depth == 0) return 0;
            w->result |= PP_STACK_INCOMPLETE;
            return 1;
        }
        if (!emit(w, resume + 1)) return 1;
        w->result |= PP_STACK_ASYNC;
        context = parent;
    }
    w->result |= PP_STACK_INCOMPLETE;
    return 1;
}

static void walk_frames(walk *w, const frame *start) {
    // Two frames, alternating between "this frame" and "its caller", so that no step copies a
    // frame (copying a struct just written field by field stalls store forwarding).
    frame frames[2];
    frames[0] = *start;
    int current = 0;
    // Bounded: every step moves the stack pointer up, and the output is bounded.
    for (int steps = 0; steps < 4096; steps++) {
        const frame *f = &frames[current];
        frame *caller = &frames[current ^ 1];
        uintptr_t address = f->interrupted ? f->pc : f->pc - 1;
        const pp_unwind_image *image = image_at(w, address);
        const pp_unwind_rule *row = NULL;
        if (image && (f->interrupted || granule_is_set(image->row_granules, image, address))) {
            row = find_rule(image, address);
        }
        // An async funclet whose frame is set up: its logical callers are in the context chain
        // (the physical callers below it are only the executor).
        if (image && in_funclet(image, address) && (!f->interrupted || (row && row->cfa_rule == PP_CFA_FP))) {
            if (emit_async_callers(w, f)) return;
        }
        int result = STEP_UNSUPPORTED;
        if (row) result = step_row(w, f, row, caller);
        if (result == STEP_UNSUPPORTED) {
            if (w->tables && !image && !f->interrupted) result = STEP_FAILED;
            else if (f->interrupted) result = step_interrupted_fallback(w, f, caller);
            else result = step_frame_record(w, f, caller);
        }
        if (result == STEP_END) return;
        if (result != STEP_OK) {
            w->result |= PP_STACK_INCOMPLETE;
            return;
        }
        if (caller->pc == 0) return;
        if (!caller->interrupted && !is_code(w, caller->pc)) {
            w->result |= PP_STACK_INCOMPLETE;
            return;
        }
        if (!emit(w, caller->interrupted ? caller->pc + 1 : caller->pc)) return;
        current ^= 1;
    }
    w->result |= PP_STACK_INCOMPLETE;
}

static int unwind(const pp_regs *regs, unsigned flags, int skip, uintptr_t *pcs, int max, unsigned *result_flags) {
    walk w;
    w.tables = pp_unwind_tables_current();
    w.last_image = NULL;
    pp_safe_reader_init(&w.reader, (flags & PP_UNWIND_FAULTS_UNBLOCKED) != 0);
    w.pcs = pcs;
    w.count = 0;
    w.max = max < 0 ? 0 : max;
    w.skip = skip < 0 ? 0 : skip;
    w.result = 0;

    frame f;
    f.pc = pp_strip_pac(regs->pc);
    f.sp = regs->sp;
    f.fp = regs->fp;
    f.lr = pp_strip_pac(regs->lr);
    f.interrupted = (flags & PP_UNWIND_FROM_SIGNAL) != 0;
    f.sp_exact = regs->sp != 0;
    if (f.interrupted || f.pc != 0) {
        if (emit(&w, f.interrupted ? f.pc + 1 : f.pc)) walk_frames(&w, &f);
    } else {
        // Start at the frame record regs->fp (the caller's own frame).
        frame caller;
        f.sp = 0;
        int result = step_frame_record(&w, &f, &caller);
        if (result == STEP_OK && caller.pc != 0) {
            if (emit(&w, caller.pc)) walk_frames(&w, &caller);
        } else if (result != STEP_END) {
            w.result |= PP_STACK_INCOMPLETE;
        }
    }
    if (result_flags) *result_flags = w.result;
    return w.count;
}

int pp_unwind(const pp_regs *regs, unsigned flags, uintptr_t *pcs, int max, unsigned *result_flags) {
    return unwind(regs, flags, 0, pcs, max, result_flags);
}

unsigned pp_unwind_flags_for_ucontext(const void *ucontext) {
    uint64_t interrupted_mask = *(const uint64_t *)((const char *)ucontext + pp_ucontext_offsets.sigmask);
    return PP_UNWIND_FROM_SIGNAL | (pp_mask_blocks_faults(interrupted_mask) ? 0 : PP_UNWIND_FAULTS_UNBLOCKED);
}

int pp_unwind_from_ucontext(const void *ucontext, uintptr_t *pcs, int max, unsigned *result_flags) {
    pp_regs regs;
    pp_regs_from_ucontext(ucontext, &regs);
    return unwind(&regs, pp_unwind_flags_for_ucontext(ucontext), 0, pcs, max, result_flags);
}

__attribute__((noinline)) int pp_capture_stack(int skip, uintptr_t *pcs, int max, unsigned *result_flags) {
    // Our own frame record holds the return address into our caller.
    pp_regs regs;
    regs.pc = 0;
    regs.sp = 0;
    regs.fp = (uintptr_t)__builtin_frame_address(0);
    regs.lr = 0;
    unsigned flags = pp_faults_recoverable_here() ? PP_UNWIND_FAULTS_UNBLOCKED : 0;
    return unwind(&regs, flags, skip, pcs, max, result_flags);
}
