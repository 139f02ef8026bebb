import Synchronization

/// The uploads of one cycle: its requests not yet delivered.
struct UploadBatch: Sendable {
    var requests: [UploadRequest]
    var profileCount: Int { requests.reduce(0) { $0 + $1.profileCount } }
}

/// A bounded queue of batches between the collector and the uploader. A batch that does not fit
/// pushes out the oldest waiting one (its profiles are counted as dropped), so a down or slow
/// server costs bounded memory and never holds up the collector.
final class UploadQueue: Sendable {
    private struct State {
        var waiting: [UploadBatch] = []
        var consumer: CheckedContinuation<UploadBatch?, Never>?
        var closed = false
    }
    private let state = Mutex(State())
    private let capacity: Int
    private let counters: ExporterCounters

    init(capacity: Int, counters: ExporterCounters) {
        self.capacity = capacity
        self.counters = counters
    }

    /// Adds a batch; never waits.
    func push(_ batch: UploadBatch) {
        guard !batch.requests.isEmpty else { return }
        let (consumer, droppedProfiles) = state.withLock { state -> (CheckedContinuation<UploadBatch?, Never>?, Int) in
            if let consumer = state.consumer {
                state.consumer = nil
                return (consumer, 0)
            }
            state.waiting.append(batch)
            var dropped = 0
            while state.waiting.count > capacity { dropped += state.waiting.removeFirst().profileCount }
            return (nil, dropped)
        }
        consumer?.resume(returning: batch)
        counters.dropped(profiles: droppedProfiles)
    }

    /// The oldest batch, waiting for one; `nil` once the queue is closed and empty.
    func next() async -> UploadBatch? {
        await withCheckedContinuation { continuation in
            let ready: UploadBatch?? = state.withLock { state in
                if !state.waiting.isEmpty { return .some(state.waiting.removeFirst()) }
                if state.closed { return .some(nil) }
                state.consumer = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// No more batches will come: `next` returns what is left, then `nil`.
    func close() {
        let consumer = state.withLock { state in
            state.closed = true
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// Empties the queue, returning the number of profiles it held.
    func discardAll() -> Int {
        state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting.reduce(0) { $0 + $1.profileCount }
        }
    }
}
