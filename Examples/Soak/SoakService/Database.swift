import Foundation
import NIOConcurrencyHelpers
import Synchronization

/// A database stand-in on a thread of its own, spoken to over a `SOCK_SEQPACKET` socket pair the
/// way a driver speaks to a server: a request writes its query and suspends on a continuation; a
/// reader thread resumes it when the answer arrives. Every `read`/`write` here is a blocking
/// system call that a profiler's signal could interrupt: each `EINTR` is counted (and retried), so
/// the soak can show that none surfaces.
final class Database: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let interruptedCalls = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    private let clientSocket: Int32
    private let serverSocket: Int32
    private let tickets = Atomic<UInt64>(0)
    private let pending = NIOLockedValueBox<[UInt64: CheckedContinuation<UInt64, any Error>]>([:])

    init() throws {
        var sockets: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &sockets) == 0 else {
            throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
        }
        clientSocket = sockets[0]
        serverSocket = sockets[1]
        Thread.detachNewThread { [self] in serve() }
        Thread.detachNewThread { [self] in deliverAnswers() }
    }

    /// The number of rows the query `id` matches, after a round trip to the database thread.
    func query(_ id: UInt64) async throws -> UInt64 {
        let ticket = tickets.wrappingAdd(1, ordering: .relaxed).newValue
        return try await withCheckedThrowingContinuation { continuation in
            pending.withLockedValue { $0[ticket] = continuation }
            var message: (UInt64, UInt64) = (ticket, id)
            let written = retryingInterrupted { write(clientSocket, &message, MemoryLayout.size(ofValue: message)) }
            if written != MemoryLayout.size(ofValue: message) {
                failures.add(1, ordering: .relaxed)
                if let continuation = pending.withLockedValue({ $0.removeValue(forKey: ticket) }) {
                    continuation.resume(throwing: Failure(description: "write: \(String(cString: strerror(errno)))"))
                }
            }
        }
    }

    /// The database: answers each query with a row count it computes from the id.
    private func serve() {
        while true {
            var query: (UInt64, UInt64) = (0, 0)
            let size = MemoryLayout.size(ofValue: query)
            guard retryingInterrupted({ read(serverSocket, &query, size) }) == size else { break }
            var answer: (UInt64, UInt64) = (query.0, Self.matchingRows(query.1))
            guard retryingInterrupted({ write(serverSocket, &answer, size) }) == size else { break }
        }
        failures.add(1, ordering: .relaxed)
    }

    private func deliverAnswers() {
        while true {
            var answer: (UInt64, UInt64) = (0, 0)
            let size = MemoryLayout.size(ofValue: answer)
            guard retryingInterrupted({ read(clientSocket, &answer, size) }) == size else { break }
            pending.withLockedValue { $0.removeValue(forKey: answer.0) }?.resume(returning: answer.1)
        }
        failures.add(1, ordering: .relaxed)
        for continuation in pending.withLockedValue({ pending in
            defer { pending = [:] }; return pending.values
        }) {
            continuation.resume(throwing: Failure(description: "the database connection closed"))
        }
    }

    /// A scan's worth of work: hash the id through a few thousand "rows".
    static func matchingRows(_ id: UInt64) -> UInt64 {
        var hash = id | 1
        var rows: UInt64 = 0
        for row in 0..<2_000 as Range<UInt64> {
            hash = (hash ^ row) &* 0x100_0000_01B3
            if hash & 0xF == 0 { rows += 1 }
        }
        return rows
    }

    private func retryingInterrupted(_ call: () -> Int) -> Int {
        while true {
            let result = call()
            if result >= 0 || errno != EINTR { return result }
            interruptedCalls.add(1, ordering: .relaxed)
        }
    }
}
