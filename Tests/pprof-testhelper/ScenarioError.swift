/// A scenario called with arguments it cannot use.
enum ScenarioError: Error, CustomStringConvertible {
    case usage(String)

    var description: String {
        switch self {
        case .usage(let text): return "usage: pprof-testhelper \(text)"
        }
    }
}
