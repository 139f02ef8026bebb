// Loaded-image enumeration for the Swift side (never in a handler: dl_iterate_phdr takes a lock).
#ifndef PP_IMAGES_H
#define PP_IMAGES_H
#include <elf.h>
#include <stdint.h>

// Called once per loaded image; `name` is "" for the main executable.
typedef void (*pp_image_visitor)(void *context, const char *name, uintptr_t load_bias,
                                 const Elf64_Phdr *headers, int count);

void pp_for_each_image(pp_image_visitor visitor, void *context);

// The loader's count of images loaded plus images unloaded so far (glibc's dlpi_adds + dlpi_subs):
// it changes whenever dlopen or dlclose changes the set of images. `unloads` receives dlpi_subs.
uint64_t pp_image_generation(uint64_t *unloads);

// The address of the vDSO's ELF header (it has no file to read), or 0.
uintptr_t pp_vdso_base(void);
#endif
