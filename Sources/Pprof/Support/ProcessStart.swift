import Glibc

/// When this process started, in nanoseconds since the Unix epoch; nil if `/proc` cannot say.
///
/// `/proc/self/stat` gives the start in clock ticks since boot; the boot clock tells how long ago
/// that was.
let processStartUnixNanos: Int64? = {
    guard let stat = readTextFile("/proc/self/stat"), let end = stat.lastIndex(of: ")") else { return nil }
    // The fields after the command name start at field 3 (state); starttime is field 22.
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
    guard fields.count > 19, let ticks = Int64(fields[19]), ticksPerSecond > 0 else { return nil }
    var boot = timespec()
    clock_gettime(CLOCK_BOOTTIME, &boot)
    let sinceBoot = Int64(boot.tv_sec) * 1_000_000_000 + Int64(boot.tv_nsec)
    let age = sinceBoot - ticks * (1_000_000_000 / ticksPerSecond)
    return currentUnixNanos() - max(0, age)
}()
