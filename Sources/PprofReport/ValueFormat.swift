import Glibc
import Pprof

/// Values and percentages printed the way google/pprof's `measurement` package prints them, so a
/// `pprof top` reads like `go tool pprof -top`: each value scaled to the largest unit it reaches
/// (`1.20s`, `10ms`, `1.50MB`), two decimals without a trailing `.00`, counts bare.
public enum ValueFormat {
    private static let byteUnits: [(name: String, factor: Double)] = [
        ("B", 1), ("kB", 1024), ("MB", 1_048_576), ("GB", 1_073_741_824), ("TB", 1_099_511_627_776),
        ("PB", 1_125_899_906_842_624),
    ]
    private static let timeUnits: [(name: String, factor: Double)] = [
        ("ns", 1), ("us", 1e3), ("ms", 1e6), ("s", 1e9), ("hrs", 3.6e12),
    ]

    /// The factor that turns a value in `unit` into the base unit of its kind, and that kind's units.
    private static func kind(of unit: String) -> (
        factor: Double, units: [(name: String, factor: Double)], fallback: String
    )? {
        var name = unit.lowercased()
        if name.hasSuffix("s"), name.count > 2 { name.removeLast() }
        switch name {
        case "b", "byte": return (1, byteUnits, "B")
        case "kb", "kbyte", "kilobyte": return (1024, byteUnits, "B")
        case "mb", "mbyte", "megabyte": return (1_048_576, byteUnits, "B")
        case "gb", "gbyte", "gigabyte": return (1_073_741_824, byteUnits, "B")
        case "ns", "nanosecond": return (1, timeUnits, "s")
        case "us", "μs", "microsecond": return (1e3, timeUnits, "s")
        case "ms", "millisecond": return (1e6, timeUnits, "s")
        case "s", "sec", "second": return (1e9, timeUnits, "s")
        case "hour", "hr": return (3.6e12, timeUnits, "s")
        default: return nil
        }
    }

    /// `value` (in `unit`) scaled to the unit it reaches, as a number and the unit's name ("" for
    /// counts and unknown units, which are printed as they are).
    public static func scaled(_ value: Int64, unit: String) -> (value: Double, unit: String) {
        if value < 0, value != .min {
            let positive = scaled(-value, unit: unit)
            return (-positive.value, positive.unit)
        }
        guard let kind = kind(of: unit) else {
            switch unit {
            case "count", "sample", "unit", "": return (Double(value), "")
            default: return (Double(value), unit)
            }
        }
        let base = Double(value) * kind.factor
        var chosen: (name: String, factor: Double)?
        for candidate in kind.units where base / candidate.factor >= 1 { chosen = candidate }
        guard let chosen else {
            let fallback = kind.units.first { $0.name == kind.fallback }!
            return (base / fallback.factor, fallback.name)
        }
        return (base / chosen.factor, chosen.name)
    }

    /// The unit `value` scales to, as a factor from `unit` and a name; nil for counts.
    public static func scaledUnit(_ value: Int64, unit: String) -> (factor: Double, name: String)? {
        guard let kind = kind(of: unit) else { return nil }
        let name = scaled(value, unit: unit).unit
        guard let target = kind.units.first(where: { $0.name == name }) else { return nil }
        return (target.factor / kind.factor, name)
    }

    /// `value` in `unit` converted to a unit `factor` base units large (nil for counts).
    static func converted(_ value: Int64, from unit: String, to factor: Double) -> Double? {
        guard let kind = kind(of: unit) else { return nil }
        return Double(value) * kind.factor / factor
    }

    /// `value` printed in a fixed unit (`2120ms`), as go tool pprof prints every value of a report
    /// in the one unit it picked.
    public static func label(_ value: Int64, scale: (factor: Double, name: String)) -> String {
        var text = fixed(Double(value) / scale.factor, decimals: 2)
        if text.hasSuffix(".00") { text.removeLast(3) }
        if text == "0" || text == "-0" { return "0" }
        return text + scale.name
    }

    /// `1.20s`, `512kB`, `42`: Go's `measurement.ScaledLabel`.
    public static func label(_ value: Int64, unit: String) -> String {
        let (number, name) = scaled(value, unit: unit)
        var text = fixed(number, decimals: 2)
        if text.hasSuffix(".00") { text.removeLast(3) }
        if text == "0" || text == "-0" { return "0" }
        return text + name
    }

    /// `48.00%`, `  100%`, `0.52%` right-aligned in five characters: Go's `measurement.Percentage`.
    public static func percentage(_ value: Int64, of total: Int64) -> String {
        let ratio = total == 0 ? 0 : abs(Double(value) / Double(total)) * 100
        if ratio >= 99.95 && ratio <= 100.05 { return "  100%" }
        if ratio >= 1 { return padded(fixed(ratio, decimals: 2), 5) + "%" }
        return padded(general(ratio), 5) + "%"
    }

    /// `%.Nf`: rounded half to even on the binary value, as C and Go print.
    static func fixed(_ value: Double, decimals: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let format = "%.\(decimals)f"
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, format, $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Go's `%.2g`: two significant digits, no trailing zeros.
    static func general(_ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.2g", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func padded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
