import ServiceLifecycle

/// The debug server as a swift-service-lifecycle `Service`: it listens while the `ServiceGroup`
/// runs and shuts down (see `PprofServer.shutdown()`) on graceful shutdown or cancellation.
///
/// ```swift
/// let group = ServiceGroup(services: [app, PprofService()], logger: logger)
/// try await group.run()
/// ```
public struct PprofService: Service {
    public let configuration: PprofServer.Configuration
    /// Called with the running server once it listens (e.g. to log `server.port`).
    private let onStart: @Sendable (PprofServer) -> Void

    public init(
        configuration: PprofServer.Configuration = PprofServer.Configuration(),
        onStart: @escaping @Sendable (PprofServer) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.onStart = onStart
    }

    public func run() async throws {
        let server = try await PprofServer.start(configuration: configuration)
        onStart(server)
        await withTaskCancellationOrGracefulShutdownHandler {
            await server.waitUntilStopped()
        } onCancelOrGracefulShutdown: {
            Task { await server.shutdown() }
        }
        await server.shutdown()
    }
}
