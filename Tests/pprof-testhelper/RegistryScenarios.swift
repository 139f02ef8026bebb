import Pprof

/// Misuses of the profile registry that must trap with Go's messages.
enum RegistryScenarios {
    static func duplicateName(_: [String]) {
        _ = Profile(name: "helper.dup")
        _ = Profile(name: "helper.dup")
    }

    static func emptyName(_: [String]) {
        _ = Profile(name: "")
    }

    static func duplicateValue(_: [String]) {
        let profile = Profile(name: "helper.values")
        profile.add(7)
        profile.add(7)
    }

    static func addToBuiltin(_: [String]) {
        Profile.lookup("heap")!.add(1)
    }

    static func removeFromBuiltin(_: [String]) {
        Profile.lookup("mutex")!.remove(1)
    }
}
