import NIOCore
import Synchronization

/// A clock whose `sleep` is a timer on a NIO event loop. Unlike `ContinuousClock`, waking up needs
/// no thread of the shared concurrency pool: the timer fires on the event loop and resumes the task
/// on its preferred executor (the server's workers). Cancelling the sleeping task wakes it at once.
struct EventLoopClock: Clock {
    typealias Duration = Swift.Duration
    typealias Instant = ContinuousClock.Instant

    let eventLoop: any EventLoop

    var now: Instant { ContinuousClock.now }
    var minimumResolution: Duration { .microseconds(1) }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let delay = now.duration(to: deadline)
        guard delay > .zero else { return try Task.checkCancellation() }
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let timer = eventLoop.scheduleTask(in: .nanoseconds(Self.nanoseconds(delay))) {
                    sleeper.wake(with: nil)
                }
                sleeper.start(continuation, timer: timer)
            }
        } onCancel: {
            sleeper.wake(with: CancellationError())
        }
    }

    /// The duration in whole nanoseconds, saturating instead of overflowing.
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : total
    }

    /// One sleep: resumed exactly once, by the timer or by cancellation, whichever comes first
    /// (cancellation may even come before the continuation exists).
    private final class Sleeper: Sendable {
        private enum State {
            case idle
            case waiting(CheckedContinuation<Void, any Error>, Scheduled<Void>)
            case finished(Error?)
        }
        private let state = Mutex(State.idle)

        func start(_ continuation: CheckedContinuation<Void, any Error>, timer: Scheduled<Void>) {
            let early: Error?? = state.withLock { state in
                switch state {
                case .idle:
                    state = .waiting(continuation, timer)
                    return .none
                case .finished(let error):
                    return .some(error)
                case .waiting:
                    preconditionFailure("sleep started twice")
                }
            }
            if case .some(let error) = early {
                timer.cancel()
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
        }

        func wake(with error: Error?) {
            let waiting: (CheckedContinuation<Void, any Error>, Scheduled<Void>)? = state.withLock { state in
                switch state {
                case .idle:
                    state = .finished(error)
                    return nil
                case .waiting(let continuation, let timer):
                    state = .finished(error)
                    return (continuation, timer)
                case .finished:
                    return nil
                }
            }
            guard let (continuation, timer) = waiting else { return }
            if error != nil { timer.cancel() }
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }
}
