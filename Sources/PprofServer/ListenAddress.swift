/// A `host:port` to listen on, parsed from configuration such as `PPROF_LISTEN`.
struct ListenAddress: Equatable {
    var host: String
    var port: Int

    /// Accepts `port`, `:port` (both on 127.0.0.1 — unlike Go, an empty host never means every
    /// interface), `host:port` and `[ipv6]:port`; `nil` otherwise.
    init?(_ text: String) {
        let text = text.trimmingCharacters(in: " \t\n")
        var host = "127.0.0.1"
        var portText = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            let hostPart = text[..<colon]
            guard !hostPart.contains(":") else { return nil }  // bare IPv6 needs brackets
            if !hostPart.isEmpty { host = String(hostPart) }
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText, radix: 10), (0...65535).contains(port) else { return nil }
        self.host = host
        self.port = port
    }

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}
