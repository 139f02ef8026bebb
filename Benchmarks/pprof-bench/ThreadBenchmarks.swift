import Foundation
@_spi(Internals) import Pprof

/// `threads`: the time to dump 1,000 threads (budget 50 ms), the stack capture alone and the whole
/// goroutine profile, and a check that every thread runs on afterwards (none is left stopped).
enum ThreadBenchmarks {
    static let threadCount = 1000
    static let rounds = 7

    final class Parking: @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var condition = pthread_cond_t()
        var parked = 0
        var released = false
        var exited = 0

        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&condition, nil)
        }
    }

    static func run() throws {
        UnwindTables.prepare()
        let parking = Parking()
        var threads: [pthread_t] = []
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 256 << 10)
        for _ in 0..<threadCount {
            var thread = pthread_t()
            let context = Unmanaged.passRetained(parking).toOpaque()
            let created = pthread_create(
                &thread,
                &attributes,
                { raw in
                    let parking = Unmanaged<Parking>.fromOpaque(raw!).takeRetainedValue()
                    pthread_mutex_lock(&parking.mutex)
                    parking.parked += 1
                    while !parking.released { pthread_cond_wait(&parking.condition, &parking.mutex) }
                    parking.exited += 1
                    pthread_mutex_unlock(&parking.mutex)
                    return nil
                },
                context
            )
            guard created == 0 else { throw PprofError.unavailable("pthread_create failed: \(created)") }
            threads.append(thread)
        }
        while true {
            pthread_mutex_lock(&parking.mutex)
            let parked = parking.parked
            pthread_mutex_unlock(&parking.mutex)
            if parked == threadCount { break }
            usleep(1000)
        }

        let clock = ContinuousClock()
        var captures: [Duration] = []
        var profiles: [Duration] = []
        var dumps: [Duration] = []
        var sampled = 0
        var total = 0
        let goroutine = Profile.lookup("goroutine")!
        for _ in 0..<rounds {
            captures.append(try clock.measure { (total, sampled) = try ThreadDump.captureAllThreads() })
            profiles.append(try clock.measure { try goroutine.write(to: ProfileBuffer(), debug: 0) })
            dumps.append(try clock.measure { try goroutine.write(to: ProfileBuffer(), debug: 2) })
        }
        print("threads in the process: \(total), answered the last dump: \(sampled)")
        print(
            "capture all stacks (signal each thread, walk, collect): median \(median(captures)), max \(captures.max()!)"
        )
        print("goroutine profile, debug=0 (capture + symbolize + encode): median \(median(profiles))")
        print("goroutine profile, debug=2 (capture + names, states + text): median \(median(dumps))")

        // No thread is left stopped: all wake up and exit.
        let released = clock.now
        pthread_mutex_lock(&parking.mutex)
        parking.released = true
        pthread_cond_broadcast(&parking.condition)
        pthread_mutex_unlock(&parking.mutex)
        for thread in threads { pthread_join(thread, nil) }
        print("all \(parking.exited) threads ran on and exited after the dumps (\(clock.now - released))")
    }

    static func median(_ values: [Duration]) -> Duration { values.sorted()[values.count / 2] }
}
