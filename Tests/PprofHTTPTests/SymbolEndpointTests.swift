import Foundation
import Pprof
import PprofHTTP
import Testing

/// `/debug/pprof/symbol` names functions in the profiles' form (`Profile.functionNames`).
@Suite struct SymbolEndpointTests {
    @Test func answersInTheShortFormByDefault() async throws {
        // String.count's getter, in libswiftCore: demangled in full it is
        // `Swift.String.count.getter : Swift.Int`.
        let address = try #require(dlsym(dlopen(nil, RTLD_NOW), "$sSS5countSivg"))
        let hex = "0x" + String(UInt(bitPattern: address), radix: 16)
        let response = await PprofHandler().respond(
            to: PprofHandler.Request(method: "GET", target: "/debug/pprof/symbol?\(hex)+0x1")
        )
        #expect(response.status == 200)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text == "num_symbols: 1\n\(hex) Swift.String.count.getter\n", "\(text)")
    }
}
