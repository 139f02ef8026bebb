/// Function names for raw addresses of this process, like Go's `runtime.FuncForPC(pc).Name()`: what
/// the `/debug/pprof/symbol` endpoint answers when `go tool pprof` asks it to symbolize addresses.
///
/// Addresses are location addresses as profiles carry them: call PCs (return address − 1) or
/// interrupted PCs. Any value is safe to pass; the memory at an address is never read.
public enum ProcessSymbols {
    /// The name (in `Profile.functionNames`' form) of the function whose code contains `address` (for inlined code, the
    /// innermost function), or `nil` when no loaded image's code or symbol covers it.
    public static func functionName(containing address: UInt) -> String? {
        functionNames(containing: [address])[address]
    }

    /// The names of the functions containing each address that some function covers; addresses
    /// outside every loaded image's code, or covered by no symbol, are absent from the result.
    public static func functionNames(containing addresses: some Sequence<UInt>) -> [UInt: String] {
        // Only addresses inside some image's code reach the symbolizer, so arbitrary input (this
        // is fed from HTTP requests) cannot crowd its address cache with misses.
        var seen = Set<UInt>()
        let inCode = addresses.filter { seen.insert($0).inserted && Symbolizer.shared.image(containing: $0) != nil }
        var names: [UInt: String] = [:]
        for (address, frames) in zip(inCode, Symbolizer.shared.frames(at: inCode)) {
            if let frame = frames.first {
                names[address] = frame.displayName
            }
        }
        return names
    }
}
