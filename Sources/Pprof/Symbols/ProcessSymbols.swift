/// Function names for raw addresses of this process, like Go's `runtime.FuncForPC(pc).Name()`: what
/// the `/debug/pprof/symbol` endpoint answers when `go tool pprof` asks it to symbolize addresses.
public enum ProcessSymbols {
    /// The demangled name of the function whose code contains `address` (for inlined code, the
    /// innermost function), or `nil` when no loaded image's code or symbol covers it.
    ///
    /// `address` is a location address as profiles carry it: a call PC (return address − 1) or an
    /// interrupted PC. Any value is safe to pass; the address itself is never read.
    public static func functionName(containing address: UInt) -> String? {
        // Only addresses inside some image's code reach the symbolizer, so arbitrary input (this
        // is fed from HTTP requests) cannot fill its per-address cache with misses.
        guard Symbolizer.shared.image(containing: address) != nil else { return nil }
        return Symbolizer.shared.frames(at: address).first?.name
    }
}
