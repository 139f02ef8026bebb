import Foundation
import Testing

@testable import Pprof

/// PLT stubs carry no symbol; a sample that lands in one (a call just made to another image's
/// function) is named `target@plt`, as objdump and perf name it, so that the mapping still claims
/// its functions and `go tool pprof` does not re-symbolize it with less information.
@Suite struct SymbolPLTTests {
    @Test(.enabled(if: Tools.find("objdump") != nil, "needs objdump"))
    func everyPLTStubIsNamedAsObjdumpNamesIt() throws {
        let binary = ChildProcess.helperURL.resolvingSymlinksInPath().path
        let objdump = try Tools.run(
            try #require(Tools.find("objdump")),
            ["-d", "-j", ".plt", "-j", ".plt.sec", binary]
        )
        var expected: [UInt64: String] = [:]
        for line in objdump.stdout.split(separator: "\n") where line.hasSuffix("@plt>:") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let address = UInt64(parts[0], radix: 16) else { continue }
            expected[address] = String(parts[1].dropFirst().dropLast(2))
        }
        try #require(expected.count > 100, "\(objdump.stderr)")
        let symbolizer = try ImageSymbolizer(path: binary, debugDirectories: [])
        for (start, name) in expected {
            // The stub's first and last instruction bytes.
            for address in [start, start + 15] {
                let frames = symbolizer.frames(atFileAddress: address)
                #expect(frames.map(\.systemName) == [name], "0x\(String(address, radix: 16))")
            }
        }
        #expect(demangle("$sSS5countSivg@plt") == demangle("$sSS5countSivg") + "@plt")
    }
}
