import PprofReport

/// The command line, parsed with go tool pprof's conventions: `-flag=value`, `-flag value` or
/// `--flag=value`, and the report as a command word (`pprof top x.pb.gz`) or as go's flag
/// (`pprof -top x.pb.gz`).
struct Arguments {
    enum Command: String, CaseIterable {
        case top, traces, tags, diff, flame, merge
    }

    var command: Command
    var options = ReportOptions()
    var sources: [String] = []
    var base: String?
    var output: String?
    var seconds: Int?
    var showsHelp = false

    static let usage = """
        usage: pprof <command> [options] <profile file or URL>…

        commands:
          top      functions by flat value (go tool pprof -top)
          traces   every sample's stack with its labels (go tool pprof -traces)
          tags     values per label (go tool pprof -tags)
          diff     top of a profile against a base: pprof diff BASE PROFILE (go tool pprof -diff_base)
          flame    writes the flame graph page as one self-contained HTML file (-o FILE, default flame.html)
          merge    merges profiles of one kind into one file (-o FILE, default merged.pb.gz)

        options:
          -sample_index=NAME|N   the value to show (e.g. alloc_space); default: the profile's default
          -focus=REGEX           only samples with a frame matching REGEX (function, file or mapping)
          -ignore=REGEX          no samples with a frame matching REGEX
          -tagfocus=KEY=REGEX    only samples whose label KEY matches (or REGEX against every key:value)
          -tagignore=KEY=REGEX   no samples whose label matches
          -nodecount=N           at most N rows in top
          -nodefraction=F        leave out functions below F of the total (default 0.005)
          -diff_base=FILE        a base profile to subtract (top, traces, flame)
          -seconds=N             for URLs of CPU or delta profiles: how long to profile
          -o FILE                where flame and merge write
        """

    init(_ arguments: [String]) throws {
        var words = arguments[...]
        var command: Command?
        var positional: [String] = []
        func value(_ name: String, _ inline: String?) throws -> String {
            if let inline { return inline }
            guard let next = words.popFirst() else { throw ReportError("option -\(name) needs a value") }
            return next
        }
        while let word = words.popFirst() {
            guard word.hasPrefix("-"), word != "-" else {
                if command == nil, positional.isEmpty, let named = Command(rawValue: word) {
                    command = named
                } else {
                    positional.append(word)
                }
                continue
            }
            var flag = String(word.drop { $0 == "-" })
            var inline: String?
            if let equals = flag.firstIndex(of: "=") {
                inline = String(flag[flag.index(after: equals)...])
                flag = String(flag[..<equals])
            }
            switch flag {
            case "h", "help": showsHelp = true
            case "top", "traces", "tags": command = Command(rawValue: flag)
            case "sample_index": options.sampleIndex = try value(flag, inline)
            case "focus", "f": options.focus = try value(flag, inline)
            case "ignore", "i": options.ignore = try value(flag, inline)
            case "tagfocus": options.tagFocus = try value(flag, inline)
            case "tagignore": options.tagIgnore = try value(flag, inline)
            case "nodecount":
                let text = try value(flag, inline)
                guard let count = Int(text), count >= 0 else { throw ReportError("invalid -nodecount \"\(text)\"") }
                options.nodeCount = count == 0 ? nil : count
            case "nodefraction":
                let text = try value(flag, inline)
                guard let fraction = Double(text), fraction >= 0, fraction <= 1 else {
                    throw ReportError("invalid -nodefraction \"\(text)\" (want 0…1)")
                }
                options.nodeFraction = fraction
            case "diff_base", "base": base = try value(flag, inline)
            case "seconds":
                let text = try value(flag, inline)
                guard let seconds = Int(text), seconds > 0 else { throw ReportError("invalid -seconds \"\(text)\"") }
                self.seconds = seconds
            case "o", "output": output = try value(flag, inline)
            case "symbolize":
                _ = try value(flag, inline)  // go tool pprof's; our profiles carry their symbols
            default:
                throw ReportError("unknown option \(word) (pprof -help lists them)")
            }
        }
        if showsHelp {
            self.command = command ?? .top
            return
        }
        guard let command else {
            throw ReportError("no command: want one of \(Command.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.command = command
        if command == .diff {
            if base == nil, positional.count == 2 { base = positional.removeFirst() }
            guard base != nil else { throw ReportError("diff needs a base: pprof diff BASE PROFILE") }
        }
        guard !positional.isEmpty else {
            throw ReportError("no profile given (a file, or a URL such as http://host:port/debug/pprof/heap)")
        }
        if command != .merge, positional.count > 1 {
            throw ReportError("\(command.rawValue) reads one profile; \(positional.count) given (use merge first)")
        }
        sources = positional
    }
}
