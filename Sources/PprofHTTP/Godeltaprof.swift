import Pprof

extension PprofHandler {
    /// godeltaprof's endpoints, listed on the index.
    static let godeltaprofEndpoints = ["delta_block", "delta_heap", "delta_mutex"]

    /// `delta_heap`, `delta_block`, `delta_mutex`: what changed since this handler's previous
    /// request to the same endpoint (the first: everything so far), as godeltaprof serves it;
    /// nil for any other name. Each handler keeps its own baselines, so two scrapers need two
    /// handlers (or one scraper each endpoint).
    func godeltaprofProfile(named name: String, _ query: QueryParameters) async -> Response? {
        let buffer = ProfileBuffer()
        do {
            switch name {
            case "delta_heap": try deltaProfilers.heap.profile(to: buffer)
            case "delta_block": try deltaProfilers.block.profile(to: buffer)
            case "delta_mutex": try deltaProfilers.mutex.profile(to: buffer)
            default: return nil
            }
        } catch PprofError.unavailable(let why) {
            return Self.error(500, "Could not write profile \(name): \(why)")
        } catch {
            return Self.error(500, "Could not write profile \(name): \(error)")
        }
        // godeltaprof's handlers name the download after the profile kind.
        return Self.profileDownload(buffer.bytes, filename: name.dropFirst("delta_".count) + ".pprof.gz")
    }
}

/// The handler's godeltaprof profilers: each keeps the baseline of its endpoint's previous request.
struct DeltaProfilers: Sendable {
    let heap = DeltaHeapProfiler()
    let block = DeltaBlockProfiler()
    let mutex = DeltaMutexProfiler()
}
