import Foundation
import Glibc
import Testing

@_spi(Benchmarks) @testable import Pprof

/// Sinks: what reaches them, and what happens when one fails part-way.
@Suite struct FormatSinkTests {
    struct SinkFailure: Error, Equatable {
        let id: UUID
    }

    /// Accepts `limit` bytes, then throws on the write that would pass it; records any write
    /// attempted after that.
    final class FailingSink: ProfileSink, @unchecked Sendable {
        let limit: Int
        let failure = SinkFailure(id: UUID())
        private(set) var accepted = 0
        private(set) var writesAfterFailure = 0
        private var failed = false

        init(after limit: Int) {
            self.limit = limit
        }

        func write(_ bytes: UnsafeRawBufferPointer) throws {
            if failed { writesAfterFailure += 1 }
            guard accepted + bytes.count <= limit else {
                failed = true
                throw failure
            }
            accepted += bytes.count
        }
    }

    /// A profile big enough for many chunks even compressed.
    static let bigProfile: ProfileData = {
        var rng = SplitMix64(seed: 5)
        var profile = ProfileData(sampleTypes: [.init(type: "samples", unit: "count")])
        profile.locations = (1...20_000).map {
            .init(id: UInt64($0), mappingID: 0, address: UInt64.random(in: 0...UInt64.max, using: &rng), lines: [])
        }
        profile.samples = (0..<10_000).map { _ in
            .init(locationIDs: (0..<20).map { _ in UInt64.random(in: 1...20_000, using: &rng) }, values: [1])
        }
        return profile
    }()

    @Test(arguments: [0, 1, 10, 64 * 1024 - 1, 64 * 1024, 200_000, 500_000])
    func aSinkThatFailsPartWayMakesWriteThrowThatError(limit: Int) throws {
        let whole = try Self.bigProfile.encoded()
        #expect(whole.count > 550_000, "the profile spans the failure points")
        let sink = FailingSink(after: limit)
        #expect(throws: sink.failure) { try Self.bigProfile.write(to: sink) }
        #expect(sink.writesAfterFailure == 0, "nothing is written after the failure")
        #expect(sink.accepted <= limit)
    }

    @Test(arguments: [0, 100, 5_000])
    func registryWritesRethrowTheSinkError(limit: Int) throws {
        let profile = Profile(name: "format.sink.\(UUID().uuidString)")
        for value in 0..<200 { openConnectionForFormatTest(profile, value) }
        for debug in [0, 1] {
            let full = ProfileBuffer()
            try profile.write(to: full, debug: debug)
            guard full.count > limit else { continue }
            let sink = FailingSink(after: limit)
            #expect(throws: sink.failure, "debug=\(debug)") { try profile.write(to: sink, debug: debug) }
            #expect(sink.writesAfterFailure == 0)
        }
    }

    @Test func fileHandleReceivesTheWholeProfile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pprof-sink-\(UUID().uuidString).pb.gz")
        #expect(FileManager.default.createFile(atPath: url.path, contents: nil))
        defer { try? FileManager.default.removeItem(at: url) }
        let handle = try FileHandle(forWritingTo: url)
        try Self.bigProfile.write(to: handle)
        try handle.close()
        let bytes = [UInt8](try Data(contentsOf: url))
        #expect(bytes == (try Self.bigProfile.encoded()))
        #expect(try ProfileData(decoding: bytes) == Self.bigProfile)
    }

    @Test func aFullDiskThrowsItsError() throws {
        let fd = open("/dev/full", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var thrown: (any Error)?
        do {
            try Self.bigProfile.write(to: handle)
        } catch {
            thrown = error
        }
        let underlying = (thrown as NSError?)?.userInfo[NSUnderlyingErrorKey] as? NSError
        #expect(underlying?.code == Int(ENOSPC), "\(String(describing: thrown))")
        let profile = Profile(name: "format.full.\(UUID().uuidString)")
        openConnectionForFormatTest(profile, 1)
        #expect(throws: (any Error).self) { try profile.write(to: handle, debug: 1) }
    }

    /// In a child process: without the guard, SIGPIPE would kill it.
    @Test func aClosedPipeThrowsInsteadOfKillingTheProcess() throws {
        let result = try ChildProcess.run("format-write-closed-pipe")
        #expect(!result.crashed && result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("write threw POSIX \(EPIPE)"))
        // The SIGPIPE the write raised was consumed, and the thread's mask is as it was.
        #expect(result.stdout.contains("pending 0 blocked 0"))
    }

    @Test func profileBufferCollectsConcurrentWrites() async throws {
        let buffer = ProfileBuffer()
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let chunk = [UInt8](repeating: UInt8(index), count: 1000)
                    for _ in 0..<100 { try? chunk.withUnsafeBytes { try buffer.write($0) } }
                }
            }
        }
        #expect(buffer.count == 800_000)
        let counts = Dictionary(grouping: buffer.bytes, by: { $0 }).mapValues(\.count)
        #expect(counts.count == 8 && counts.values.allSatisfy { $0 == 100_000 })
        buffer.reset()
        #expect(buffer.bytes.isEmpty && buffer.text.isEmpty)
    }
}
