import Pprof

extension PprofHandler {
    /// What each entry of the index is, in Go's words adapted to Swift (threads for goroutines, no GC).
    static let profileDescriptions: [String: String] = [
        "allocs": "A sampling of all past memory allocations",
        "block": "Stack traces that led to blocking on synchronization primitives",
        "cmdline": "The command line invocation of the current program",
        "delta_block": "Blocking since the previous request to this endpoint (godeltaprof)",
        "delta_heap":
            "Allocations since the previous request to this endpoint, with live memory as of now (godeltaprof)",
        "delta_mutex": "Lock contention since the previous request to this endpoint (godeltaprof)",
        "goroutine":
            "Stack traces of all current threads. Use debug=2 as a query parameter to export in the same format as an unrecovered panic.",
        "heap":
            "A sampling of memory allocations of live objects, as of now (Swift frees memory without a garbage collector, so the gc parameter is accepted and does nothing).",
        "mutex": "Stack traces of holders of contended mutexes",
        "profile":
            "CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile file, use the go tool pprof command to investigate the profile.",
        "symbol":
            "Maps given program counters to function names. Counters can be specified in a GET raw query or POST body, multiple counters are separated by '+'.",
        "threadcreate": "Stack traces that led to the creation of new OS threads",
        "wall":
            "Wall-clock profile: every thread's stack, running or waiting and in what (state label), over the seconds GET parameter. Idle pool threads are left out unless include_idle=1.",
    ]

    /// Go's index: every profile with its count, linked with `?debug=1`, then the descriptions.
    func indexPage() -> Response {
        var entries = Profile.all.map { (name: $0.name, count: $0.count) }
        for name in ["cmdline", "profile", "symbol", "wall"] + Self.godeltaprofEndpoints {
            entries.append((name, 0))
        }
        entries.sort { Array($0.name.utf8).lexicographicallyPrecedes($1.name.utf8) }

        var html = """
            <html>
            <head>
            <title>\(HTML.escape(configuration.pathPrefix))/</title>
            <style>
            .profile-name{
            \tdisplay:inline-block;
            \twidth:6rem;
            }
            </style>
            </head>
            <body>
            \(HTML.escape(configuration.pathPrefix))/
            <br>
            <p>Set debug=1 as a query parameter to export in legacy text format</p>
            <br>
            Types of profiles available:
            <table>
            <thead><td>Count</td><td>Profile</td></thead>

            """
        for entry in entries {
            // "./" keeps a name such as "a:b" from reading as a URL scheme.
            let link = "./" + QueryParameters.percentEncodedPath(entry.name) + "?debug=1"
            html +=
                "<tr><td>\(entry.count)</td><td><a href='\(HTML.escape(link))'>\(HTML.escape(entry.name))</a></td></tr>\n"
        }
        html += """
            </table>
            <a href="goroutine?debug=2">full goroutine stack dump</a>
            <br>
            <a href="ui">profile viewer: flame graph, top, diff</a>
            <br>
            <p>
            Profile Descriptions:
            <ul>

            """
        for entry in entries {
            let description = Self.profileDescriptions[entry.name] ?? ""
            html += "<li><div class=profile-name>\(HTML.escape(entry.name)): </div> \(HTML.escape(description))</li>\n"
        }
        html += """
            </ul>
            </p>
            </body>
            </html>
            """
        return Self.text(html, contentType: "text/html; charset=utf-8")
    }
}
