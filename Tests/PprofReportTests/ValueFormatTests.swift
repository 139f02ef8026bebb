import Testing

@testable import PprofReport

@Suite struct ValueFormatTests {
    @Test func scalesLikeGoMeasurement() {
        #expect(ValueFormat.label(1_200_000_000, unit: "nanoseconds") == "1.20s")
        #expect(ValueFormat.label(10_000_000, unit: "nanoseconds") == "10ms")
        #expect(ValueFormat.label(0, unit: "nanoseconds") == "0")
        #expect(ValueFormat.label(1_572_864, unit: "bytes") == "1.50MB")
        #expect(ValueFormat.label(524_288, unit: "bytes") == "512kB")
        #expect(ValueFormat.label(-2048, unit: "bytes") == "-2kB")
        #expect(ValueFormat.label(42, unit: "count") == "42")
        #expect(ValueFormat.percentage(48, of: 100) == "48.00%")
        #expect(ValueFormat.percentage(100, of: 100) == "  100%")
        #expect(ValueFormat.percentage(52, of: 10_000) == " 0.52%")
    }
}
