/// The profile viewer page: HTML, CSS and JavaScript of our own, no third-party code, no request
/// to anything but the server it came from.
public enum UIPage {
    /// The page the debug server serves at `ui`: it loads `ui/data?…` from the same server.
    public static func served() -> [UInt8] {
        Array(template.replacingOccurrences(of: "__PPROF_EMBEDDED__", with: "null").utf8)
    }

    /// One self-contained file with the profile's data (and a base to diff against) embedded, to
    /// open offline (`pprof flame`).
    public static func standalone(data: [UInt8], base: [UInt8]?, title: String) -> [UInt8] {
        var embedded = "{\"title\":" + jsonString(title) + ",\"data\":" + String(decoding: data, as: UTF8.self)
        if let base { embedded += ",\"base\":" + String(decoding: base, as: UTF8.self) }
        embedded += "}"
        return Array(template.replacingOccurrences(of: "__PPROF_EMBEDDED__", with: embedded).utf8)
    }

    static func jsonString(_ text: String) -> String {
        var writer = JSONWriter()
        writer.string(text)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    static let template = """
        <!doctype html><meta charset="utf-8"><title>pprof</title>
        <script>const PPROF_EMBEDDED = __PPROF_EMBEDDED__;</script>
        """
}

extension String {
    /// Every occurrence of `target` replaced (Foundation-free).
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}
