import Foundation

/// Runs `body` on a new thread whose signal mask is empty, and returns its result.
///
/// Swift Testing runs tests on Concurrency worker threads, where libdispatch blocks every
/// asynchronous signal except SIGPROF; a child process inherits its parent thread's mask, so a
/// child started from a test would run with SIGCHLD, SIGALRM, SIGTERM and every real-time signal
/// blocked (gdb, for one, then waits forever).
func withDefaultSignalMask<T>(_ body: @escaping () throws -> T) throws -> T {
    nonisolated(unsafe) var outcome: Result<T, any Error>?
    nonisolated(unsafe) let body = body
    let done = DispatchSemaphore(value: 0)
    Thread {
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        outcome = Result { try body() }
        done.signal()
    }.start()
    done.wait()
    return try outcome!.get()
}
