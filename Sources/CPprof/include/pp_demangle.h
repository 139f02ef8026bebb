// Demangling entry points used by the Swift symbolizer (never in a handler: both allocate).
#ifndef PP_DEMANGLE_H
#define PP_DEMANGLE_H
#include <stddef.h>
#include <stdint.h>

// swift_demangle from libswiftCore. Returns a malloc'd string (caller frees) or NULL if `mangled`
// is not a Swift symbol.
char *pp_swift_demangle(const char *mangled, size_t length);

// The C++ demangler (libstdc++/libc++abi), looked up with dlsym so that linking does not depend on
// a C++ runtime. Returns a malloc'd string or NULL.
char *pp_cxx_demangle(const char *mangled);

#endif
