import NIOPosix
@_spi(Integration) import Pprof

/// Runs the handler's tasks on the server's own worker threads instead of the shared concurrency
/// pool, so `/debug/pprof` answers even when every pool thread is stuck — exactly when a profile
/// is wanted. Together with `EventLoopClock` (waits timed by the event loop), no part of a
/// request needs a thread of the shared pool.
final class WorkerExecutor: TaskExecutor {
    private let pool: NIOThreadPool

    init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        // Named so the server's threads are recognisable in the goroutine (threads) profile.
        pool._start(threadNamePrefix: "pprof-http-w#")
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        pool.submit { _ in
            // Its waits for work are not the service's blocking.
            ProfilerWork.markCurrentThread()
            // Runs even when the pool is already shutting down (state `.cancelled`): a job that
            // never ran would leave its task suspended forever.
            job.runSynchronously(on: executor)
        }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
