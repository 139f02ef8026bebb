import Pprof

extension PprofHandler {
    /// godeltaprof's endpoints, listed on the index once their profilers exist.
    static let godeltaprofEndpoints: [String] = []

    /// `delta_heap`, `delta_block`, `delta_mutex`; nil for any other name.
    func godeltaprofProfile(named name: String, _ query: QueryParameters) async -> Response? {
        // Pending: DeltaHeapProfiler, DeltaBlockProfiler and DeltaMutexProfiler (not on main yet).
        nil
    }
}
