import Foundation
import Synchronization

/// Where a profile is written: Go's `io.Writer`.
///
/// `FileHandle` and `ProfileBuffer` conform; adopt it to send profiles anywhere else. A `write`
/// that throws makes the profile's `write(to:)` (or `CPUProfile.stop()`) throw that same error.
/// Sinks are `Sendable` because a CPU profile is written from the profiler's own thread at `stop`.
public protocol ProfileSink: Sendable {
    /// Appends `bytes`. Called with chunks of the profile in order; throw to abort the write.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension FileHandle: ProfileSink {
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try write(
            contentsOf: Data(
                bytesNoCopy: UnsafeMutableRawPointer(mutating: base),
                count: bytes.count,
                deallocator: .none
            )
        )
    }
}

/// An in-memory sink that collects everything written to it.
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

    /// Forgets everything written so far.
    public func reset() { storage.withLock { $0.removeAll() } }
}

extension ProfileSink {
    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}
