import Foundation
import Glibc

/// One keep-alive HTTP/1.1 connection with blocking reads; bodies framed by Content-Length.
final class KeepAliveConnection {
    private let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, result == 0 else { throw CocoaError(.fileReadUnknown) }
    }

    deinit { close(fd) }

    /// Sends a GET and returns the body size once the whole response has arrived.
    func get(_ target: String) throws -> Int { try fetch(target).body.count }

    /// Sends a GET and returns the response's status and body once the whole response has arrived.
    func fetch(_ target: String) throws -> (status: Int, body: [UInt8]) {
        let request = Array("GET \(target) HTTP/1.1\r\nHost: bench\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var headEnd: Int? = nil
        var length = 0
        var status = 0
        while true {
            if headEnd == nil, let end = find(Array("\r\n\r\n".utf8)) {
                headEnd = end + 4
                let head = String(decoding: pending[..<end], as: UTF8.self).lowercased()
                status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                let line = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") } ?? ""
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if let headEnd, pending.count >= headEnd + length {
                let body = Array(pending[headEnd..<headEnd + length])
                pending.removeFirst(headEnd + length)
                return (status, body)
            }
            var chunk = [UInt8](repeating: 0, count: 256 * 1024)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw CocoaError(.fileReadUnknown) }
            pending += chunk[0..<n]
        }
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard pending.count >= needle.count else { return nil }
        for index in 0...(pending.count - needle.count)
        where pending[index..<index + needle.count].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
