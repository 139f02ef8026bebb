// dl_iterate_phdr wrapper for the Swift symbolizer. Nothing here runs in a handler or hook.
#include <link.h>
#include <stddef.h>
#include <sys/auxv.h>

#include "pp_images.h"

struct visit {
    pp_image_visitor visitor;
    void *context;
};

static int visit_one(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct visit *visit = data;
    visit->visitor(visit->context, info->dlpi_name ? info->dlpi_name : "", (uintptr_t)info->dlpi_addr,
                   (const Elf64_Phdr *)info->dlpi_phdr, info->dlpi_phnum);
    return 0;
}

void pp_for_each_image(pp_image_visitor visitor, void *context) {
    struct visit visit = {visitor, context};
    dl_iterate_phdr(visit_one, &visit);
}

struct generation {
    uint64_t adds;
    uint64_t subs;
};

static int read_generation(struct dl_phdr_info *info, size_t size, void *data) {
    struct generation *generation = data;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        generation->adds = info->dlpi_adds;
        generation->subs = info->dlpi_subs;
    }
    return 1;  // the counters are the same in every entry: stop after the first
}

uint64_t pp_image_generation(uint64_t *unloads) {
    struct generation generation = {0, 0};
    dl_iterate_phdr(read_generation, &generation);
    if (unloads) *unloads = generation.subs;
    return generation.adds + generation.subs;
}

uintptr_t pp_vdso_base(void) { return (uintptr_t)getauxval(AT_SYSINFO_EHDR); }
