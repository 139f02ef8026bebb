import Foundation
import Pprof
import Synchronization

/// A small simulated request-handling service, written the way real Swift services are, so that
/// every profile has something true to say about it:
///
/// - client tasks send requests to three routes, each handled under a `route` profile label:
///   `/search` ranks documents, `/render` builds HTML pages, `/login` stretches passwords
///   (different CPU shares), with real `await`s (a simulated backend call, yields);
/// - a response cache keeps allocations live (heap in-use), page building churns (allocs);
/// - a session store behind an `NSLock` that a sweeper thread holds for a while, metrics behind a
///   `Synchronization.Mutex` that a reporter thread holds while it aggregates (block, mutex);
/// - an audit log whose writer threads wait on an `NSCondition`, standby threads parked on a
///   semaphore (goroutine), a log rotator that starts a short-lived thread now and then
///   (threadcreate), and open connections in a custom profile (`demo.connections`).
final class DemoService: Sendable {
    enum Route: String, CaseIterable, Sendable {
        case search = "/search"
        case render = "/render"
        case login = "/login"
    }

    struct Request: Sendable {
        var route: Route
        var user: Int
        var query: Int
    }

    static let clientCount = 4
    static let standbyCount = 3
    static let auditWriterCount = 2

    #if DEBUG
        // Unoptimized code is ~10× slower: a debug build (the tests run it) ranks fewer documents and
        // stretches passwords less, so that a run of seconds still sees every route and contention.
        static let documentCount = 150
        static let passwordRounds = 8_000
    #else
        static let documentCount = 2_000
        static let passwordRounds = 12_000
    #endif

    let index = SearchIndex(documentCount: DemoService.documentCount, seed: 1)
    /// How long each client waits between requests (0: as fast as it can).
    let pause: Duration

    init(pause: Duration = .zero) {
        self.pause = pause
    }
    let cache = ResponseCache(capacity: 1_500)
    let sessions = SessionStore()
    let metrics = Metrics()
    let auditLog = AuditLog()
    let connections = ConnectionPool()
    private let searches = Atomic<Int>(0)
    private let renders = Atomic<Int>(0)
    private let logins = Atomic<Int>(0)
    private let stopRequested = Atomic<Bool>(false)
    private let shuttingDown = Atomic<Bool>(false)
    private let standby = DispatchSemaphore(value: 0)
    private let threadsRunning = DispatchGroup()

    /// Clients stop sending requests.
    var isStopping: Bool { stopRequested.load(ordering: .relaxed) }
    /// The service's own threads end.
    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    /// Starts the service's own threads: sweeper, reporter (and log rotator), audit writers, standby.
    func startBackgroundThreads() {
        spawn("session-sweeper") { service in
            while !service.isShuttingDown {
                service.sessions.sweepExpired()
                Thread.sleep(forTimeInterval: 0.008)
            }
        }
        spawn("metrics-report") { service in
            var rotations = 0
            while !service.isShuttingDown {
                service.metrics.report()
                Thread.sleep(forTimeInterval: 0.02)
                rotations += 1
                if rotations % 10 == 0 { LogRotator.rotate() }
            }
        }
        for number in 1...Self.auditWriterCount {
            spawn("audit-writer-\(number)") { service in
                while let batch = service.auditLog.takeBatch() { AuditLog.write(batch) }
            }
        }
        for number in 1...Self.standbyCount {
            spawn("standby-\(number)") { service in service.parkUntilShutdown() }
        }
    }

    /// Runs the clients until `stop()`.
    func serveRequests() async {
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<Self.clientCount {
                group.addTask { await self.runClient(client) }
            }
        }
    }

    /// Stops the clients; `serveRequests()` returns. The service's threads keep running.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// Stops everything, closes the connections and waits for the service's threads.
    func shutdown() {
        stop()
        shuttingDown.store(true, ordering: .relaxed)
        auditLog.close()
        for _ in 0..<Self.standbyCount { standby.signal() }
        threadsRunning.wait()
        connections.closeAll()
    }

    private func runClient(_ client: Int) async {
        var random = SplitMix64(seed: UInt64(client) &+ 17)
        var connection = connections.open()
        var handled = 0
        while !isStopping {
            let request = Request(
                route: Self.pickRoute(&random),
                user: Int(random.next() % 400),
                query: Int(random.next() % 3_000)
            )
            await handle(request)
            if pause > .zero { try? await Task.sleep(for: pause) }
            handled += 1
            // Clients reconnect now and then, as keep-alive connections expire.
            if handled % 40 == 0 {
                connections.close(connection)
                connection = connections.open()
            }
        }
    }

    /// Route mix: half searches, a third renders, the rest logins.
    private static func pickRoute(_ random: inout SplitMix64) -> Route {
        switch random.next() % 6 {
        case 0, 1, 2: .search
        case 3, 4: .render
        default: .login
        }
    }

    func handle(_ request: Request) async {
        let started = ContinuousClock.now
        await withProfileLabels(["route": request.route.rawValue]) {
            switch request.route {
            case .search: await search(request)
            case .render: await render(request)
            case .login: await login(request)
            }
            metrics.record(request.route, latency: ContinuousClock.now - started)
            auditLog.append("\(request.route.rawValue) user=\(request.user) query=\(request.query)")
        }
        switch request.route {
        case .search: searches.add(1, ordering: .relaxed)
        case .render: renders.add(1, ordering: .relaxed)
        case .login: logins.add(1, ordering: .relaxed)
        }
    }

    /// Requests handled so far, per route.
    var requestsHandled: [Route: Int] {
        [
            .search: searches.load(ordering: .relaxed), .render: renders.load(ordering: .relaxed),
            .login: logins.load(ordering: .relaxed),
        ]
    }

    @inline(never)
    func search(_ request: Request) async {
        sessions.touch(user: request.user)
        if let cached = cache.lookup(query: request.query), cached.count > 1 {
            await Task.yield()
            return
        }
        let terms = SearchIndex.terms(ofQuery: request.query)
        // The spelling service, a backend call.
        try? await Task.sleep(for: .microseconds(300))
        let hits = index.rank(terms: terms, limit: 10)
        cache.store(query: request.query, body: SearchIndex.serialize(hits, padding: 8_192 + request.query % 16_384))
    }

    @inline(never)
    func render(_ request: Request) async {
        sessions.touch(user: request.user)
        let rows = await Renderer.loadRows(count: 120 + request.query % 80)
        let page = Renderer.renderPage(title: "user \(request.user)", rows: rows)
        _ = Renderer.checksum(of: page)
    }

    @inline(never)
    func login(_ request: Request) async {
        try? await Task.sleep(for: .microseconds(200))
        let digest = PasswordHasher.stretch(password: "secret-\(request.user)", rounds: Self.passwordRounds)
        sessions.create(user: request.user, token: digest)
    }

    private func parkUntilShutdown() {
        standby.wait()
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable (DemoService) -> Void) {
        threadsRunning.enter()
        let thread = Thread { [self] in
            // Named from inside, and the kernel name (`comm`, what thread dumps show) set directly:
            // Foundation's setter left it unset now and then.
            Thread.current.name = String(name.prefix(15))
            try? String(name.prefix(15)).write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            body(self)
            threadsRunning.leave()
        }
        thread.start()
    }
}

/// A deterministic random number generator, so runs are alike.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Documents as term ids, ranked with a TF-IDF score: the `/search` CPU.
final class SearchIndex: Sendable {
    let documents: [[UInt32]]
    let inverseFrequency: [Double]
    static let vocabularySize = 4_096

    init(documentCount: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var documents: [[UInt32]] = []
        var frequency = [Int](repeating: 0, count: Self.vocabularySize)
        for _ in 0..<documentCount {
            // Skewed term distribution: low ids are common words.
            let terms = (0..<96).map { _ -> UInt32 in
                let a = random.next() % UInt64(Self.vocabularySize)
                let b = random.next() % UInt64(Self.vocabularySize)
                return UInt32(min(a, b))
            }
            for term in Set(terms) { frequency[Int(term)] += 1 }
            documents.append(terms)
        }
        self.documents = documents
        self.inverseFrequency = frequency.map { log(Double(documentCount + 1) / Double($0 + 1)) }
    }

    static func terms(ofQuery query: Int) -> [UInt32] {
        var random = SplitMix64(seed: UInt64(query))
        return (0..<4).map { _ in UInt32(random.next() % UInt64(vocabularySize)) }
    }

    @inline(never)
    func rank(terms: [UInt32], limit: Int) -> [(document: Int, score: Double)] {
        var scored: [(document: Int, score: Double)] = []
        for (number, document) in documents.enumerated() {
            let score = Self.score(document, terms: terms, inverseFrequency: inverseFrequency)
            if score > 0 { scored.append((number, score)) }
        }
        scored.sort { $0.score > $1.score }
        return Array(scored.prefix(limit))
    }

    @inline(never)
    static func score(_ document: [UInt32], terms: [UInt32], inverseFrequency: [Double]) -> Double {
        var score = 0.0
        for term in terms {
            var count = 0
            for word in document where word == term { count += 1 }
            if count > 0 {
                let tf = Double(count) / Double(document.count)
                score += tf * inverseFrequency[Int(term)]
            }
        }
        return score
    }

    static func serialize(_ hits: [(document: Int, score: Double)], padding: Int) -> [UInt8] {
        var body = [UInt8]()
        body.reserveCapacity(padding + hits.count * 24)
        for hit in hits { body.append(contentsOf: Array("\(hit.document):\(hit.score);".utf8)) }
        body.append(contentsOf: repeatElement(0x20, count: padding))
        return body
    }
}

/// Page rendering: string building and hashing, lots of short-lived allocations.
enum Renderer {
    struct Row: Sendable {
        var id: Int
        var name: String
        var price: Double
    }

    /// The rows come from a backend; the call suspends.
    static func loadRows(count: Int) async -> [Row] {
        await Task.yield()
        return (0..<count).map { Row(id: $0, name: "item-\($0 &* 7_919)", price: Double($0) * 1.25) }
    }

    @inline(never)
    static func renderPage(title: String, rows: [Row]) -> String {
        var html = "<html><head><title>\(title)</title></head><body><table>\n"
        for row in rows {
            html += "<tr><td>\(row.id)</td><td>\(escape(row.name))</td><td>\(formatPrice(row.price))</td></tr>\n"
        }
        html += "</table></body></html>\n"
        return html
    }

    @inline(never)
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "&": escaped += "&amp;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func formatPrice(_ price: Double) -> String {
        let cents = Int((price * 100).rounded())
        return "\(cents / 100).\(cents % 100 < 10 ? "0" : "")\(cents % 100)"
    }

    /// Adler-32 of the page.
    @inline(never)
    static func checksum(of page: String) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in page.utf8 {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}

/// Key stretching: the `/login` CPU.
enum PasswordHasher {
    @inline(never)
    static func stretch(password: String, rounds: Int) -> UInt64 {
        var state: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in password.utf8 { state = (state ^ UInt64(byte)) &* 0x100_0000_01B3 }
        for round in 0..<rounds {
            state = mix(state ^ UInt64(truncatingIfNeeded: round))
        }
        return state
    }

    @inline(never)
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        for _ in 0..<8 {
            x ^= x >> 33
            x &*= 0xFF51_AFD7_ED55_8CCD
            x ^= x >> 29
        }
        return x
    }
}

/// Responses kept for later requests: allocations that stay live. Evicts the oldest.
final class ResponseCache: Sendable {
    private struct State {
        var bodies: [Int: [UInt8]] = [:]
        var order: [Int] = []
    }
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func lookup(query: Int) -> [UInt8]? {
        state.withLock { $0.bodies[query] }
    }

    @inline(never)
    func store(query: Int, body: [UInt8]) {
        state.withLock { state in
            if state.bodies.updateValue(body, forKey: query) == nil { state.order.append(query) }
            if state.order.count > capacity {
                state.bodies[state.order.removeFirst()] = nil
            }
        }
    }

    var byteCount: Int { state.withLock { $0.bodies.values.reduce(0) { $0 + $1.count } } }
}

/// Sessions behind an `NSLock`; the sweeper holds it while it scans every session.
final class SessionStore: @unchecked Sendable {
    final class Session {
        var lastSeen: UInt64
        var token: [UInt64]
        init(lastSeen: UInt64, token: [UInt64]) {
            self.lastSeen = lastSeen
            self.token = token
        }
    }
    private let lock = NSLock()
    private var sessions: [Int: Session] = [:]
    private var clock: UInt64 = 0

    @inline(never)
    func touch(user: Int) {
        lock.lock()
        defer { lock.unlock() }
        clock += 1
        if let session = sessions[user] {
            session.lastSeen = clock
        } else {
            sessions[user] = Session(lastSeen: clock, token: [UInt64(user)])
        }
    }

    @inline(never)
    func create(user: Int, token: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        clock += 1
        sessions[user] = Session(lastSeen: clock, token: (0..<16).map { token &+ UInt64($0) })
    }

    /// Scans every session under the lock (requests wait meanwhile), dropping idle ones.
    @inline(never)
    func sweepExpired() {
        lock.lock()
        defer { lock.unlock() }
        var checksum: UInt64 = 0
        for _ in 0..<20 {
            for (user, session) in sessions {
                for word in session.token { checksum = PasswordHasher.mix(checksum ^ word ^ UInt64(user)) }
            }
        }
        sessions = sessions.filter { clock &- $0.value.lastSeen < 2_000 || checksum == 0 }
    }
}

/// Latencies per route behind a `Synchronization.Mutex`; the reporter holds it while it computes
/// percentiles.
final class Metrics: Sendable {
    private let latencies = Mutex<[DemoService.Route: [Duration]]>([:])
    private let lastReport = Mutex<String>("")

    @inline(never)
    func record(_ route: DemoService.Route, latency: Duration) {
        latencies.withLock { $0[route, default: []].append(latency) }
    }

    @inline(never)
    func report() {
        let line = latencies.withLock { latencies in
            var parts: [String] = []
            for (route, values) in latencies.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                // Sorting while holding the lock: what makes recorders wait.
                let sorted = values.sorted()
                let p99 = sorted.isEmpty ? .zero : sorted[sorted.count * 99 / 100]
                parts.append("\(route.rawValue) n=\(sorted.count) p99=\(p99)")
                if values.count > 20_000 { latencies[route] = Array(values.suffix(5_000)) }
            }
            return parts.joined(separator: " ")
        }
        lastReport.withLock { $0 = line }
    }
}

/// Audit entries queued under an `NSCondition`; writer threads wait for them.
final class AuditLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [String] = []
    private var closed = false

    func append(_ entry: String) {
        condition.lock()
        pending.append(entry)
        if pending.count >= 16 { condition.signal() }
        condition.unlock()
    }

    /// Waits for a batch of entries; nil once closed.
    @inline(never)
    func takeBatch() -> [String]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.count < 16 && !closed { condition.wait() }
        if closed && pending.isEmpty { return nil }
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    @inline(never)
    static func write(_ batch: [String]) {
        var hash: UInt64 = 0
        for entry in batch { for byte in entry.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 } }
        if hash == 42 { print("unlikely") }
    }
}

/// Compresses the rotated log on a short-lived thread of its own, as log libraries do.
enum LogRotator {
    @inline(never)
    static func rotate() {
        let compressor = Thread {
            Thread.current.name = "log-compress"
            var state: UInt64 = 1
            for round in 0..<50_000 { state = (state ^ UInt64(round)) &* 0x100_0000_01B3 }
            if state == 0 { print("unlikely") }
        }
        compressor.start()
    }
}

/// Open client connections, listed in the custom profile `demo.connections`.
final class ConnectionPool: Sendable {
    struct Connection: Hashable, Sendable {
        var id: Int
    }
    static let profile = Profile(name: "demo.connections")
    private let nextID = Atomic<Int>(1)
    private let openConnections = Mutex<Set<Connection>>([])

    @inline(never)
    func open() -> Connection {
        let connection = Connection(id: nextID.add(1, ordering: .relaxed).oldValue)
        openConnections.withLock { _ = $0.insert(connection) }
        Self.profile.add(connection)
        return connection
    }

    func close(_ connection: Connection) {
        openConnections.withLock { _ = $0.remove(connection) }
        Self.profile.remove(connection)
    }

    func closeAll() {
        for connection in openConnections.withLock({ $0 }) { close(connection) }
    }
}
