// Listing the threads of this process. Nothing here runs in a signal handler or hook.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "pp_thread_id.h"

int pp_thread_list_open(void) {
    return (int)pp_syscall4(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
}

int pp_thread_list_read(int directory, int32_t *tids, int max) {
    if (pp_syscall3(SYS_lseek, directory, 0, SEEK_SET) != 0) return -1;
    char buffer[8192] __attribute__((aligned(8)));
    int count = 0;
    for (;;) {
        long n = pp_syscall3(SYS_getdents64, directory, buffer, sizeof buffer);
        if (n < 0) return -1;
        if (n == 0) break;
        for (long offset = 0; offset < n;) {
            const struct dirent64 *entry = (const struct dirent64 *)(buffer + offset);
            offset += entry->d_reclen;
            int32_t tid = 0;
            const char *name = entry->d_name;
            if (*name < '0' || *name > '9') continue;
            for (; *name >= '0' && *name <= '9'; name++) tid = tid * 10 + (*name - '0');
            if (*name == 0 && count < max) tids[count++] = tid;
        }
    }
    return count;
}
