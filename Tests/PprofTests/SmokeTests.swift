import Testing

@testable import Pprof

@inline(never) func addFromKnownSite(_ profile: Profile, _ value: Int) {
    profile.add(value)
}

@Test func customProfileRoundTrip() throws {
    let profile = Profile(name: "smoke.test")
    addFromKnownSite(profile, 1)
    addFromKnownSite(profile, 2)
    let buffer = ProfileBuffer()
    try profile.write(to: buffer, debug: 0)
    let decoded = try ProfileData(decoding: buffer.bytes)
    #expect(decoded.samples.count == 2)
    let names = decoded.functions.map(\.name)
    print(names)
    #expect(names.contains { $0.contains("addFromKnownSite") })
    let text = ProfileBuffer()
    try profile.write(to: text, debug: 1)
    print(text.text)
}
