import Foundation
@_spi(Internals) import Pprof

/// The unwinder's fault-recovery handler must leave real crashes to the handler it replaced.
enum UnwindScenarios {
    /// Prepares the unwind tables (which installs the SIGSEGV/SIGBUS recovery handler), then
    /// dereferences a bad pointer.
    static func crashAfterPrepare(_: [String]) {
        UnwindTables.prepare()
        FileHandle.standardError.write(Data("prepared\n".utf8))
        let pointer = UnsafeMutablePointer<Int>(bitPattern: 8)!
        pointer.pointee = 1
    }
}
