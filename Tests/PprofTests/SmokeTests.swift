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

@Test(arguments: [
    ("trap-duplicate-name", "pprof: NewProfile name already in use: helper.dup"),
    ("trap-empty-name", "pprof: NewProfile with empty name"),
    ("trap-duplicate-value", "pprof: Profile.Add of duplicate value"),
    ("trap-add-builtin", "pprof: Add called on built-in Profile heap"),
    ("trap-remove-builtin", "pprof: Remove called on built-in Profile mutex"),
])
func registryMisuseTraps(scenario: String, message: String) throws {
    let result = try ChildProcess.run(scenario)
    #expect(result.crashed)
    #expect(result.stderr.contains(message))
}
