import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import Synchronization

/// A Hummingbird 2 service shaped like a real one, for the soak (`pprof-bench soak`). It knows
/// nothing of swift-pprof: `pprof-soak-server` runs it with the hooks and every profile on,
/// `pprof-soak-plain` runs it bare, and the soak compares the two.
///
/// - `/orders?items=N` encodes N line items to JSON, decodes them back and totals them (CPU, allocs);
/// - `/inventory/{sku}` reserves stock from an actor that every request of this route queues on;
/// - `/prices/{key}` reads a price table from a cache behind a pthread mutex, building it on a miss
///   (heap in use bounded by the cache's capacity, mutex contention);
/// - `/query/{id}` waits for a simulated database thread that answers over a socket pair (a task
///   suspended on a continuation, blocking `read`/`write` that a signal could interrupt);
/// - `/stats` reports what the service counted, `EINTR` seen by its own system calls among it.
public enum SoakService {
    /// Wraps each route's handler; the profiled server sets a `route` profile label here.
    public typealias RouteScope =
        @Sendable (_ route: String, _ body: () async throws -> Response) async throws -> Response

    /// Serves on 127.0.0.1:`port` (0: a free port) until SIGTERM or SIGINT, after printing
    /// `listening on <port>` on standard output.
    public static func run(port: Int, scope: @escaping RouteScope = { _, body in try await body() }) async throws {
        let state = try ServiceState()
        let router = Router()
        addRoutes(to: router, state: state, scope: scope)
        var logger = Logger(label: "soak")
        logger.logLevel = .warning
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("listening on \(channel.localAddress?.port ?? 0)\n".utf8))
            },
            logger: logger
        )
        try await app.runService()
    }

    static func addRoutes(to router: Router<BasicRequestContext>, state: ServiceState, scope: @escaping RouteScope) {
        router.get("/orders") { request, _ in
            try await scope("/orders") {
                let items = request.uri.queryParameters.get("items", as: Int.self) ?? 20
                guard (1...1_000).contains(items) else { throw HTTPError(.badRequest, message: "items: 1…1000") }
                state.count()
                return try json(Orders.roundTrip(items: items, seed: state.nextSeed()))
            }
        }
        router.get("/inventory/{sku}") { _, context in
            try await scope("/inventory") {
                let sku = try context.parameters.require("sku", as: Int.self)
                state.count()
                let left = await state.inventory.reserve(sku: sku)
                return try json(["sku": sku, "left": left])
            }
        }
        router.get("/prices/{key}") { _, context in
            try await scope("/prices") {
                let key = try context.parameters.require("key", as: Int.self)
                state.count()
                let table = state.prices.table(for: key)
                return try json(["key": key, "cheapest": Int(table.min() ?? 0), "entries": table.count])
            }
        }
        router.get("/query/{id}") { _, context in
            try await scope("/query") {
                let id = try context.parameters.require("id", as: UInt64.self)
                state.count()
                let rows = try await state.database.query(id)
                return try json(["id": Int(truncatingIfNeeded: id), "rows": Int(rows)])
            }
        }
        router.get("/stats") { _, _ in
            try json([
                "requests": state.requests.load(ordering: .relaxed),
                "interruptedCalls": state.database.interruptedCalls.load(ordering: .relaxed),
                "databaseFailures": state.database.failures.load(ordering: .relaxed),
            ])
        }
    }

    static func json<Value: Encodable>(_ value: Value) throws -> Response {
        let body = try JSONEncoder().encode(value)
        return Response(
            status: .ok,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }
}

final class ServiceState: Sendable {
    let requests = Atomic<Int>(0)
    private let seeds = Atomic<UInt64>(1)
    let inventory = Inventory()
    let prices = PriceCache(capacity: 2_048)
    let database: Database

    init() throws {
        database = try Database()
    }

    func count() { requests.add(1, ordering: .relaxed) }
    func nextSeed() -> UInt64 { seeds.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue }
}

enum Orders {
    struct LineItem: Codable {
        var sku: Int
        var title: String
        var quantity: Int
        var unitCents: Int
    }

    struct Summary: Codable {
        var items: Int
        var totalCents: Int
        var bytes: Int
    }

    static func roundTrip(items: Int, seed: UInt64) throws -> Summary {
        var state = seed
        var order: [LineItem] = []
        order.reserveCapacity(items)
        for index in 0..<items {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let sku = Int(truncatingIfNeeded: state >> 40)
            order.append(
                LineItem(sku: sku, title: "item \(index) of \(sku)", quantity: index % 7 + 1, unitCents: sku % 10_000)
            )
        }
        let encoded = try JSONEncoder().encode(order)
        let decoded = try JSONDecoder().decode([LineItem].self, from: encoded)
        let total = decoded.reduce(0) { $0 + $1.quantity * $1.unitCents }
        return Summary(items: decoded.count, totalCents: total, bytes: encoded.count)
    }
}

/// Stock per SKU; every `/inventory` request queues on this one actor.
actor Inventory {
    private var stock: [Int: Int] = [:]

    func reserve(sku: Int) -> Int {
        let left = (stock[sku] ?? 1_000) - 1
        // Restocked when it runs out, so the dictionary's size stays bounded by the SKUs asked for.
        stock[sku] = left > 0 ? left : 1_000
        return left
    }
}

/// Price tables keyed by product, behind a pthread mutex (NIOLock), evicting at random when full.
final class PriceCache: Sendable {
    private let capacity: Int
    private let tables = NIOLockedValueBox<[Int: [UInt32]]>([:])

    init(capacity: Int) {
        self.capacity = capacity
    }

    func table(for key: Int) -> [UInt32] {
        if let table = tables.withLockedValue({ $0[key] }) { return table }
        let table = Self.buildTable(key: key)
        tables.withLockedValue { tables in
            if tables.count >= capacity, let victim = tables.keys.randomElement() { tables[victim] = nil }
            tables[key] = table
        }
        return table
    }

    static func buildTable(key: Int) -> [UInt32] {
        var value = UInt32(truncatingIfNeeded: key) | 1
        return (0..<256).map { _ in
            value ^= value << 13
            value ^= value >> 17
            value ^= value << 5
            return value % 100_000
        }
    }
}
