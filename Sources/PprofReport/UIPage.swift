/// The profile viewer page: HTML, CSS and JavaScript of our own, no third-party code, no request
/// to anything but the server it came from.
public enum UIPage {
    /// The page the debug server serves at `ui`, offering `profiles` in its picker; it loads
    /// `ui/data?profile=…` from the same server.
    public static func served(profiles: [String]) -> [UInt8] {
        var config = JSONWriter()
        config.raw("{\"profiles\":")
        config.strings(profiles)
        config.raw(",\"embedded\":null}")
        return page(config)
    }

    /// One self-contained file with `data` (`FlameGraphData.json`, a diff's base included)
    /// embedded, to open offline (`pprof flame`).
    public static func standalone(data: [UInt8], title: String) -> [UInt8] {
        var config = JSONWriter()
        config.raw("{\"profiles\":[],\"embedded\":{\"title\":")
        config.string(title)
        config.raw(",\"data\":")
        config.appendJSON(data)
        config.raw("}}")
        return page(config)
    }

    private static func page(_ config: JSONWriter) -> [UInt8] {
        let marker = Array("__PPROF_CONFIG__".utf8)
        let page = Array(template.utf8)
        guard let start = page.firstRange(of: marker) else { return page }
        return Array(page[..<start.lowerBound]) + config.bytes + Array(page[start.upperBound...])
    }
}
