import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
@_spi(Integration) import Pprof
import PprofHTTP
import Synchronization

/// A standalone `/debug/pprof` server on SwiftNIO, for programs that have no HTTP server of their
/// own or want profiling on a separate, private port:
///
/// ```swift
/// let server = try await PprofServer.start()            // http://127.0.0.1:6060/debug/pprof/
/// // or, when PPROF_LISTEN is set (e.g. PPROF_LISTEN=127.0.0.1:6060):
/// let server = try await PprofServer.startFromEnvironment()
/// ```
///
/// It listens on 127.0.0.1 unless told otherwise, can require a bearer token, and runs on threads
/// of its own (one event loop and a few workers): it keeps answering while every thread of Swift's
/// shared concurrency pool is busy or stuck. Connections, request bodies, header sizes and idle
/// time are bounded. For a `ServiceGroup`, use `PprofService`.
public final class PprofServer: Sendable {
    /// Where and how the server listens.
    public struct Configuration: Sendable {
        /// The address to bind; 127.0.0.1 by default so the profiles stay on this machine.
        public var host: String
        /// The port; 0 picks a free one (see `PprofServer.port`).
        public var port: Int
        /// Paths, limits and the optional bearer token of the endpoints.
        public var handler: PprofHandler.Configuration
        /// Connections beyond this many get a 503 and are closed.
        public var maximumConnections: Int
        /// A connection that sends no complete request for this long is closed. Requests being
        /// answered (a 30-second CPU profile) are never cut short by it.
        public var idleTimeout: Duration
        /// Threads that run the handler (profile encoding, symbolization); waits hold none.
        public var workerThreads: Int

        public init(
            host: String = "127.0.0.1",
            port: Int = 6060,
            handler: PprofHandler.Configuration = PprofHandler.Configuration(),
            maximumConnections: Int = 64,
            idleTimeout: Duration = .seconds(60),
            workerThreads: Int = 2
        ) {
            self.host = host
            self.port = port
            self.handler = handler
            self.maximumConnections = maximumConnections
            self.idleTimeout = idleTimeout
            self.workerThreads = workerThreads
        }

        /// Requests must carry `Authorization: Bearer <token>` when set.
        public var bearerToken: String? {
            get { handler.bearerToken }
            set { handler.bearerToken = newValue }
        }

        /// The environment variable naming the address to listen on: `PPROF_LISTEN=127.0.0.1:6060`.
        /// A bare port or `:port` listens on 127.0.0.1; another host only when written out
        /// (`0.0.0.0:6060`, `[::]:6060`).
        public static let listenVariable = "PPROF_LISTEN"
        /// The environment variable holding the bearer token requests must present, if any.
        public static let tokenVariable = "PPROF_BEARER_TOKEN"

        /// The configuration the environment asks for, or `nil` when `PPROF_LISTEN` is not set.
        /// Throws `PprofServerError.invalidListenAddress` when it is set to something unusable.
        public static func fromEnvironment(
            _ environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws -> Configuration? {
            guard let listen = environment[listenVariable], !listen.isEmpty else { return nil }
            guard let address = ListenAddress(listen) else { throw PprofServerError.invalidListenAddress(listen) }
            var configuration = Configuration(host: address.host, port: address.port)
            if let token = environment[tokenVariable], !token.isEmpty { configuration.bearerToken = token }
            return configuration
        }
    }

    /// The configuration the server was started with.
    public let configuration: Configuration
    /// The port the server listens on (the one picked when configured with 0).
    public let port: Int
    /// The address the server listens on, e.g. `127.0.0.1`.
    public let host: String

    private let group: MultiThreadedEventLoopGroup
    private let executor: WorkerExecutor
    private let serverChannel: any Channel
    private let connections: Connections
    private let state = Mutex(ShutdownState.running)
    private let stopped = StopSignal()

    private enum ShutdownState {
        case running
        case stopping
    }

    /// Starts a server and returns once it listens.
    public static func start(configuration: Configuration = Configuration()) async throws -> PprofServer {
        let parts = try Parts(configuration: configuration)
        do {
            let channel = try await parts.bootstrap().bind(host: configuration.host, port: configuration.port).get()
            return PprofServer(configuration: configuration, parts: parts, channel: channel)
        } catch {
            await parts.shutdown()
            throw error
        }
    }

    /// Starts a server and returns once it listens, from synchronous code.
    @available(*, noasync, message: "use the async start(configuration:) from async code")
    public static func start(configuration: Configuration = Configuration()) throws -> PprofServer {
        let parts = try Parts(configuration: configuration)
        do {
            let channel = try parts.bootstrap().bind(host: configuration.host, port: configuration.port).wait()
            return PprofServer(configuration: configuration, parts: parts, channel: channel)
        } catch {
            parts.group.shutdownGracefully { _ in }
            Task { await parts.executor.shutdown() }
            throw error
        }
    }

    /// Starts a server if `PPROF_LISTEN` is set (see `Configuration.fromEnvironment`), else
    /// returns `nil`: the documented way to enable profiling in a deployed program without code
    /// changes per environment.
    public static func startFromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> PprofServer? {
        guard let configuration = try Configuration.fromEnvironment(environment) else { return nil }
        return try await start(configuration: configuration)
    }

    private init(configuration: Configuration, parts: Parts, channel: any Channel) {
        self.configuration = configuration
        self.group = parts.group
        self.executor = parts.executor
        self.connections = parts.connections
        self.serverChannel = channel
        self.port = channel.localAddress?.port ?? configuration.port
        self.host = channel.localAddress?.ipAddress ?? configuration.host
    }

    /// Stops the server: no new connections; idle ones close; requests in progress are cancelled
    /// (a running CPU profile stops and is sent) and their connections close after the answer.
    /// Returns when every thread of the server has ended. Calling it again waits for the first call.
    public func shutdown() async {
        let first = state.withLock { state in
            guard case .running = state else { return false }
            state = .stopping
            return true
        }
        guard first else {
            return await stopped.wait()
        }
        try? await serverChannel.close()
        await connections.closeAll(grace: .seconds(5))
        await executor.shutdown()
        try? await group.shutdownGracefully()
        stopped.signal()
    }

    /// Suspends until `shutdown()` has finished.
    public func waitUntilStopped() async {
        await stopped.wait()
    }

    /// What a server needs before it listens.
    private struct Parts {
        let configuration: Configuration
        let group: MultiThreadedEventLoopGroup
        let executor: WorkerExecutor
        let connections: Connections
        let handler: PprofHandler

        init(configuration: Configuration) throws {
            guard configuration.maximumConnections > 0, configuration.workerThreads > 0,
                configuration.idleTimeout > .zero, (0...65535).contains(configuration.port)
            else {
                throw PprofServerError.invalidConfiguration(
                    "maximumConnections, workerThreads and idleTimeout must be positive and port within 0...65535"
                )
            }
            self.configuration = configuration
            // Started as the profiler's work: threadcreate marks these threads.
            (group, executor) = ProfilerWork.run {
                (MultiThreadedEventLoopGroup(numberOfThreads: 1), WorkerExecutor(threads: configuration.workerThreads))
            }
            connections = Connections(maximum: configuration.maximumConnections)
            handler = PprofHandler(
                configuration: configuration.handler,
                clock: EventLoopClock(eventLoop: group.next())
            )
            // Recognisable in the threads profile.
            group.next().execute {
                nameCurrentThread("pprof-http")
                ProfilerWork.markCurrentThread()
            }
        }

        func bootstrap() -> ServerBootstrap {
            let limits = ConnectionHandler.Limits(
                maximumBodySize: configuration.handler.maximumRequestBodySize,
                idleTimeout: .nanoseconds(EventLoopClock.nanoseconds(configuration.idleTimeout))
            )
            let decoderLimits = {
                var limits = NIOHTTPDecoderLimitConfiguration()
                limits.maxHeaderFieldSize = 16 * 1024
                limits.maxHeaderListSize = 32 * 1024
                limits.maxHeaderFieldCount = 100
                return limits
            }()
            let handler = self.handler
            let executor = self.executor
            let connections = self.connections
            return ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 4)
                .childChannelInitializer { channel in
                    guard connections.admit(channel) else {
                        return Connections.refuse(channel)
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withPipeliningAssistance: true,
                            withErrorHandling: true,
                            withOutboundHeaderValidation: true,
                            withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                            withDecoderLimitConfiguration: decoderLimits
                        )
                        try channel.pipeline.syncOperations.addHandler(
                            ConnectionHandler(handler: handler, executor: executor, limits: limits)
                        )
                    }
                }
        }

        func shutdown() async {
            await executor.shutdown()
            try? await group.shutdownGracefully()
        }
    }
}

/// Set once when shutdown has finished; waiters need no event loop (the server's are gone by then).
private final class StopSignal: Sendable {
    private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { state in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if done { continuation.resume() }
        }
    }
}

/// Errors starting a `PprofServer`.
public enum PprofServerError: Error, Equatable, CustomStringConvertible {
    /// `PPROF_LISTEN` (or a given address) is not `host:port`, `:port` or `port`.
    case invalidListenAddress(String)
    /// A limit in the configuration is out of range.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .invalidListenAddress(let text):
            return "invalid listen address \"\(text)\": expected host:port, [ipv6]:port, :port or port"
        case .invalidConfiguration(let why):
            return "invalid PprofServer configuration: \(why)"
        }
    }
}

/// The open connections: counted against the limit, and closed together at shutdown.
final class Connections: Sendable {
    private let maximum: Int
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Registers `channel` unless the limit is reached; it is forgotten when it closes.
    func admit(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let admitted = open.withLock { open in
            guard open.count < maximum else { return false }
            open[key] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in
                _ = self.open.withLock { $0.removeValue(forKey: key) }
            }
        }
        return admitted
    }

    /// Answers a connection over the limit with a 503 and closes it.
    static func refuse(_ channel: any Channel) -> EventLoopFuture<Void> {
        let message = "too many connections\n"
        let text =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nX-Go-Pprof: 1\r\n"
            + "Content-Length: \(message.utf8.count)\r\nConnection: close\r\n\r\n\(message)"
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
        return channel.eventLoop.makeSucceededVoidFuture()
    }

    var count: Int { open.withLock { $0.count } }

    /// Asks every connection to finish (see `ServerShutdownEvent`), then closes any still open
    /// after `grace`.
    func closeAll(grace: Duration) async {
        let channels = open.withLock { Array($0.values) }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(ServerShutdownEvent())
        }
        let deadline = ContinuousClock.now + grace
        for channel in channels {
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining > .zero {
                let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(EventLoopClock.nanoseconds(remaining))) {
                    channel.close(promise: nil)
                }
                try? await channel.closeFuture.get()
                timeout.cancel()
            } else {
                try? await channel.close()
            }
        }
    }
}

/// Names the calling thread (at most 15 bytes) through `/proc/thread-self/comm`.
func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}
