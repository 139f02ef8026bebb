import NIOCore
import NIOHTTP1
import PprofHTTP

/// Fired down a connection's pipeline when the server shuts down: an idle connection closes at
/// once; a request in progress is cancelled (a CPU profile stops and is sent), answered with
/// `Connection: close`, then the connection closes.
struct ServerShutdownEvent {}

/// One HTTP/1.1 connection: collects a request (bounded), answers it through `PprofHandler` in a
/// task on the server's own workers, writes the response, and cancels that task when the client
/// goes away so a CPU profile or a `seconds=N` wait stops at once.
final class ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Limits {
        var maximumBodySize: Int
        /// How long a connection may go without delivering a complete request.
        var idleTimeout: TimeAmount
    }

    private let handler: PprofHandler
    private let executor: WorkerExecutor
    private let limits: Limits

    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    private var running: Task<Void, Never>?
    private var idleTimer: Scheduled<Void>?
    private var shuttingDown = false
    /// A response is queued but not yet fully handed to the socket.
    private var writing = false

    init(handler: PprofHandler, executor: WorkerExecutor, limits: Limits) {
        self.handler = handler
        self.executor = executor
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armIdleTimer(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            let declaredLength = requestHead.headers.first(name: "Content-Length").flatMap { Int($0) } ?? 0
            bodyTooLarge = declaredLength > limits.maximumBodySize
            // curl (not go tool pprof) waits for this before sending a POST body over 1 KiB.
            if !bodyTooLarge, requestHead.headers.first(name: "Expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: requestHead.version, status: .continue))),
                    promise: nil
                )
            }
        case .body(var buffer):
            guard !bodyTooLarge else { return }
            if body.count + buffer.readableBytes > limits.maximumBodySize {
                // Keep reading (and dropping) the rest; the answer is a 413 once the request ends.
                bodyTooLarge = true
                body = []
            } else {
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            idleTimer?.cancel()
            idleTimer = nil
            start(requestHead, context: context)
        }
    }

    private func start(_ requestHead: HTTPRequestHead, context: ChannelHandlerContext) {
        if bodyTooLarge {
            let response = PprofHandler.Response(
                status: 413,
                headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Go-Pprof", "1")],
                body: Array("request body too large (limit \(limits.maximumBodySize) bytes)\n".utf8)
            )
            write(response, for: requestHead, forceClose: true, context: context)
            return
        }
        let request = PprofHandler.Request(
            method: requestHead.method.rawValue,
            target: requestHead.uri,
            headers: requestHead.headers.map { (name: $0.name, value: $0.value) },
            body: body
        )
        body = []
        let handler = self.handler
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        running = Task(executorPreference: executor) {
            let response = await handler.respond(to: request)
            loopBound.eventLoop.execute {
                let (connection, context) = loopBound.value
                connection.running = nil
                guard context.channel.isActive else { return }
                connection.write(response, for: requestHead, forceClose: false, context: context)
            }
        }
    }

    private func write(
        _ response: PprofHandler.Response,
        for requestHead: HTTPRequestHead,
        forceClose: Bool,
        context: ChannelHandlerContext
    ) {
        let keepAlive = requestHead.isKeepAlive && !forceClose && !shuttingDown
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: requestHead.version, status: status, headers: headers))),
            promise: nil
        )
        if requestHead.method != .HEAD && !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        // Until the client has taken the whole response, a connection whose socket stays full
        // for the idle timeout is closed (see channelWritabilityChanged); then it idles as usual.
        writing = true
        if !context.channel.isWritable { armIdleTimer(context: context) }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            let (connection, context) = loopBound.value
            connection.writing = false
            if keepAlive && !connection.shuttingDown {
                connection.armIdleTimer(context: context)
            } else {
                connection.idleTimer?.cancel()
                context.close(promise: nil)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if writing {
            if context.channel.isWritable {
                idleTimer?.cancel()
                idleTimer = nil
            } else {
                armIdleTimer(context: context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ServerShutdownEvent else {
            return context.fireUserInboundEventTriggered(event)
        }
        shuttingDown = true
        if let running {
            running.cancel()  // its response is sent, then the connection closes
        } else if !writing {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client went away: stop whatever its request started.
        running?.cancel()
        running = nil
        idleTimer?.cancel()
        idleTimer = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        let channel = context.channel
        idleTimer = context.eventLoop.scheduleTask(in: limits.idleTimeout) {
            channel.close(promise: nil)
        }
    }
}
