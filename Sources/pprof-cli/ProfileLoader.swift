import AsyncHTTPClient
import Glibc
import NIOCore
import Pprof
import PprofReport

/// Reads a profile from a file or an `http(s)://` URL (a `/debug/pprof` endpoint of ours or of Go).
final class ProfileLoader {
    let seconds: Int?
    private var client: HTTPClient?

    init(seconds: Int?) {
        self.seconds = seconds
    }

    func shutdown() {
        try? client?.syncShutdown()
    }

    func load(_ source: String) async throws -> ProfileData {
        let bytes: [UInt8]
        if source.hasPrefix("http://") || source.hasPrefix("https://") {
            bytes = try await download(source)
        } else {
            bytes = try Self.readFile(source)
        }
        do {
            return try ProfileData(decoding: bytes)
        } catch {
            throw ReportError("\(source): not a pprof profile (\(error))")
        }
    }

    private func download(_ url: String) async throws -> [UInt8] {
        var url = url
        if let seconds, !url.contains("seconds=") {
            url += (url.contains("?") ? "&" : "?") + "seconds=\(seconds)"
        }
        let client = self.client ?? HTTPClient(eventLoopGroupProvider: .singleton)
        self.client = client
        let request = HTTPClientRequest(url: url)
        let wait = Int64(seconds ?? 30) + 60
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(wait))
        } catch {
            throw ReportError("\(url): \(error)")
        }
        let body = try await response.body.collect(upTo: 512 << 20)
        let bytes = Array(body.readableBytesView)
        guard response.status.code == 200 else {
            let message = String(decoding: bytes.prefix(300), as: UTF8.self).split(separator: "\n").first ?? ""
            throw ReportError("\(url): HTTP \(response.status.code) \(message)")
        }
        return bytes
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ReportError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReportError("\(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return bytes
    }
}
