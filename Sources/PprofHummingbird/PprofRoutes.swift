import HTTPTypes
import Hummingbird
import PprofHTTP

extension RouterMethods {
    /// Mounts Go's `/debug/pprof` endpoints (see `PprofHandler`) at `path`:
    ///
    /// ```swift
    /// let router = Router()
    /// router.addPprofRoutes()    // GET /debug/pprof/, /debug/pprof/heap, /debug/pprof/profile?seconds=30, …
    /// ```
    ///
    /// The handler's own `pathPrefix` is ignored here: requests are routed by `path`, wherever the
    /// router or group puts it. Pass a handler to set limits or a bearer token.
    @discardableResult
    public func addPprofRoutes(atPath path: RouterPath = "/debug/pprof", handler: PprofHandler = PprofHandler()) -> Self
    {
        addRoutes(PprofRoutes<Context>(handler: handler).routes, atPath: path)
    }
}

/// The `/debug/pprof` endpoints as a Hummingbird route collection, to mount with
/// `router.addRoutes(PprofRoutes().routes, atPath: "/debug/pprof")` (what `addPprofRoutes` does).
public struct PprofRoutes<Context: RequestContext>: Sendable {
    public let handler: PprofHandler

    public init(handler: PprofHandler = PprofHandler()) {
        self.handler = handler
    }

    /// `GET`/`HEAD` for every endpoint and `POST` for `symbol`, at the mount point and below it.
    public var routes: RouteCollection<Context> {
        let collection = RouteCollection(context: Context.self)
        let handler = self.handler
        for method in [HTTPRequest.Method.get, .head, .post] {
            collection.on("", method: method) { request, _ in
                // Keep the trailing slash: the bare mount point is redirected to it.
                let suffix = request.uri.path.hasSuffix("/") ? "/" : ""
                return try await Self.respond(handler, request, relativePath: suffix)
            }
            collection.on("**", method: method) { request, context in
                let rest = context.parameters.getCatchAll().joined(separator: "/")
                return try await Self.respond(handler, request, relativePath: "/" + rest)
            }
        }
        return collection
    }

    /// Translates to and from the framework-agnostic handler. `relativePath` is the part of the
    /// path below the mount point ("" for the mount point itself, "/heap", …).
    static func respond(_ handler: PprofHandler, _ request: Request, relativePath: String) async throws -> Response {
        var request = request
        let limit = handler.configuration.maximumRequestBodySize
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch {
            return Response(
                status: .contentTooLarge,
                headers: [.contentType: "text/plain; charset=utf-8", HTTPField.Name("X-Go-Pprof")!: "1"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "request body too large (limit \(limit) bytes)\n"))
            )
        }
        let pprofRequest = PprofHandler.Request(
            method: request.method.rawValue,
            path: handler.configuration.pathPrefix + relativePath,
            query: request.uri.query ?? "",
            headers: request.headers.map { (name: $0.name.rawName, value: $0.value) },
            body: Array(buffer: body)
        )
        let response = await handler.respond(to: pprofRequest)
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        let answer = Response(
            status: HTTPResponse.Status(code: response.status),
            headers: fields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: response.body))
        )
        return request.method == .head ? answer.createHeadResponse() : answer
    }
}
