import Foundation
import Glibc
import Synchronization

/// Where a profile is written: Go's `io.Writer`.
///
/// `FileHandle` and `ProfileBuffer` conform; adopt it to send profiles anywhere else. Profiles are
/// written in chunks, in order, as they are encoded. A `write` that throws stops the profile's
/// `write(to:)` (or `CPUProfile.stop()`), which rethrows that same error. Sinks are `Sendable`
/// because a CPU profile is written from the profiler's own thread at `stop`.
public protocol ProfileSink: Sendable {
    /// Appends `bytes`. Called with chunks of the profile in order; throw to abort the write. The
    /// buffer is only valid during the call.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension FileHandle: ProfileSink {
    /// Writes all of `bytes` (retrying short writes). Writing to a pipe or socket whose reader is
    /// gone throws `EPIPE` instead of killing the process with `SIGPIPE`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try withBrokenPipeSignalSuppressed {
            try write(
                contentsOf: Data(
                    bytesNoCopy: UnsafeMutableRawPointer(mutating: base),
                    count: bytes.count,
                    deallocator: .none
                )
            )
        }
    }
}

/// Runs `body` with `SIGPIPE` blocked on this thread, and discards a `SIGPIPE` that `body` raised,
/// so a write to a closed pipe fails with `EPIPE` (as Go's writes do) instead of ending the process.
/// A `SIGPIPE` that was already pending is left alone.
func withBrokenPipeSignalSuppressed<Result>(_ body: () throws -> Result) rethrows -> Result {
    var brokenPipe = sigset_t()
    sigemptyset(&brokenPipe)
    sigaddset(&brokenPipe, SIGPIPE)
    var pending = sigset_t()
    sigpending(&pending)
    let wasPending = sigismember(&pending, SIGPIPE) == 1
    var previousMask = sigset_t()
    pthread_sigmask(SIG_BLOCK, &brokenPipe, &previousMask)
    defer {
        if !wasPending {
            sigpending(&pending)
            if sigismember(&pending, SIGPIPE) == 1 {
                var noWait = timespec(tv_sec: 0, tv_nsec: 0)
                while sigtimedwait(&brokenPipe, nil, &noWait) < 0 && errno == EINTR {}
            }
        }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }
    return try body()
}

/// An in-memory sink that collects everything written to it. Safe to share between threads.
public final class ProfileBuffer: ProfileSink {
    private let storage = Mutex<[UInt8]>([])

    public init() {}

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        storage.withLock { $0.append(contentsOf: bytes) }
    }

    /// Everything written so far.
    public var bytes: [UInt8] { storage.withLock { $0 } }

    /// Everything written so far, as UTF-8 text (for debug=1 and debug=2 output).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The number of bytes written so far.
    public var count: Int { storage.withLock { $0.count } }

    /// Forgets everything written so far.
    public func reset() { storage.withLock { $0.removeAll() } }
}

extension ProfileSink {
    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes text as UTF-8 in chunks of at most 64 KiB, so a failing sink fails early.
    func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            var offset = 0
            while offset < raw.count {
                let end = min(offset + 64 * 1024, raw.count)
                try write(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                offset = end
            }
        }
    }
}
