import Foundation
import Glibc

/// A minimal blocking HTTP/1.1 client over a loopback socket, run on a thread of its own so tests
/// never block the shared concurrency pool (which an in-process Hummingbird server needs).
enum RawHTTPClient {
    struct Response {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        var text: String { String(decoding: body, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends one request with `Connection: close` and reads the whole response.
    static func fetch(
        port: Int,
        _ target: String,
        method: String = "GET",
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        timeout: Duration = .seconds(60)
    ) async throws -> Response {
        var request = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { request += "Content-Length: \(body.count)\r\n" }
        request += "\r\n"
        let bytes = try await exchange(port: port, Array(request.utf8) + body, timeout: timeout)
        return try parse(bytes, headOnly: method == "HEAD")
    }

    /// Sends `bytes` and returns everything the server sends until it closes the connection.
    /// With `disconnectAfter`, closes the connection itself after that long without waiting.
    static func exchange(
        port: Int,
        _ bytes: [UInt8],
        timeout: Duration = .seconds(60),
        disconnectAfter: Duration? = nil
    ) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try blockingExchange(port: port, bytes, timeout: timeout, disconnectAfter: disconnectAfter)
                    }
                )
            }
            thread.start()
        }
    }

    private static func blockingExchange(
        port: Int,
        _ bytes: [UInt8],
        timeout: Duration,
        disconnectAfter: Duration?
    ) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var time = timeval(
            tv_sec: Int(timeout.components.seconds),
            tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000)
        )
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 {
            // A profiler's signal may interrupt a connect that waits for a full backlog; the
            // connection then completes on its own, and poll says when.
            guard errno == EINTR else { throw Failure(description: "connect to port \(port): errno \(errno)") }
            try finishInterruptedConnect(fd, port: port, timeout: timeout)
        }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }  // the server may answer and close before reading everything
            sent += n
        }
        if let disconnectAfter {
            Thread.sleep(
                forTimeInterval: Double(disconnectAfter.components.seconds)
                    + Double(disconnectAfter.components.attoseconds) / 1e18
            )
            return []
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET && !received.isEmpty { break }
                throw Failure(description: "recv: errno \(errno) after \(received.count) bytes")
            }
            received += chunk[0..<n]
        }
        return received
    }

    /// Waits until a connect that `EINTR` interrupted has completed, and throws if it failed.
    private static func finishInterruptedConnect(_ fd: Int32, port: Int, timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, 100)
            if ready > 0 { break }
            if ready < 0 && errno != EINTR { throw Failure(description: "poll: errno \(errno)") }
            if ContinuousClock.now > deadline { throw Failure(description: "connect to port \(port): timed out") }
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else { throw Failure(description: "connect to port \(port): errno \(error)") }
    }

    /// Parses one response (Content-Length or read-to-close bodies; chunked is decoded too).
    static func parse(_ bytes: [UInt8], headOnly: Bool = false) throws -> Response {
        guard let end = find([13, 10, 13, 10], in: bytes) else {
            throw Failure(description: "no complete response head in \(bytes.count) bytes")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failure(description: "bad status line in \(head)")
        }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var response = Response(status: status, headers: headers, body: Array(bytes[(end + 4)...]))
        if headOnly { return response }
        if let length = response.header("Content-Length").flatMap({ Int($0) }) {
            guard response.body.count >= length else {
                throw Failure(description: "body truncated: \(response.body.count) of \(length) bytes")
            }
            response.body = Array(response.body.prefix(length))
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            response.body = try dechunk(response.body)
        }
        return response
    }

    private static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
        var output: [UInt8] = []
        var index = 0
        while let lineEnd = find([13, 10], in: bytes, from: index) {
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else {
                throw Failure(description: "bad chunk size \(sizeText)")
            }
            if size == 0 { return output }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { throw Failure(description: "chunk truncated") }
            output += bytes[start..<start + size]
            index = start + size + 2
        }
        throw Failure(description: "unterminated chunked body")
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count)
        where bytes[index..<index + needle.count].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
