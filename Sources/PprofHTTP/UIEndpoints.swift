import Pprof
import PprofReport

extension PprofHandler {
    /// What the viewer's picker offers: the CPU and wall profiles, every registered profile and
    /// godeltaprof's endpoints.
    var viewerProfileNames: [String] {
        ["profile", "wall"] + Profile.all.map(\.name).sorted() + Self.godeltaprofEndpoints
    }

    /// `ui`: the profile viewer page (flame graph, top table, label filter, diff).
    func viewerPage() -> Response {
        Response(
            status: 200,
            headers: [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                // The page asks nothing of anyone but this server.
                (
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"
                ),
            ],
            body: UIPage.served(profiles: viewerProfileNames)
        )
    }

    /// `ui/data?profile=NAME`: the viewer's JSON (`FlameGraphData`) of one profile.
    ///
    /// - `seconds=N`: the CPU or wall profile's length (30 when absent), or for a cumulative
    ///   profile what it gained in N seconds (as `NAME?seconds=N`).
    /// - `diff=1`: also a base to compare with, as `go tool pprof -diff_base` does: for CPU and
    ///   wall the window of N seconds just before, for other profiles the profile N seconds earlier.
    /// - `focus`, `ignore`, `tagfocus`, `tagignore`, `sample_index`: go tool pprof's filters.
    ///
    /// Anything malformed is a 400 with the reason, before any profiling starts.
    func viewerData(_ query: QueryParameters) async -> Response {
        let name = query["profile"]
        let known = viewerProfileNames
        guard !name.isEmpty else {
            return Self.error(400, "missing profile parameter; one of: " + known.joined(separator: ", "))
        }
        guard known.contains(name) else {
            return Self.error(400, "unknown profile \"\(name)\"; one of: " + known.joined(separator: ", "))
        }
        var options = ReportOptions()
        func given(_ key: String) -> String? { query[key].isEmpty ? nil : query[key] }
        options.focus = given("focus")
        options.ignore = given("ignore")
        options.tagFocus = given("tagfocus")
        options.tagIgnore = given("tagignore")
        options.sampleIndex = given("sample_index")
        do {
            _ = try SampleFilter(options)
        } catch {
            return Self.error(400, "\(error)")
        }
        var seconds: Int64?
        if let text = given("seconds") {
            guard let value = QueryParameters.int64(text), value > 0 else {
                return Self.error(400, #"invalid value for "seconds" - must be a positive integer"#)
            }
            if let tooLong = rejectDuration(value) { return tooLong }
            seconds = value
        }
        let diff: Bool
        switch query["diff"] {
        case "", "0", "false": diff = false
        case "1", "true": diff = true
        default: return Self.error(400, #"invalid value for "diff" - must be 0 or 1"#)
        }

        let profiles: (profile: ProfileData, base: ProfileData?)
        switch await viewerProfiles(name, seconds: seconds, diff: diff, query) {
        case .success(let fetched): profiles = fetched
        case .failure(let response): return response.response
        }
        do {
            let json = try FlameGraphData.json(profiles.profile, base: profiles.base, options: options)
            return Response(
                status: 200,
                headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                body: json
            )
        } catch let error as ReportError {
            return Self.error(400, error.description)
        } catch {
            return Self.error(500, "could not build the viewer's data: \(error)")
        }
    }

    /// The profile the viewer asked for, and its base for a diff.
    private func viewerProfiles(
        _ name: String,
        seconds: Int64?,
        diff: Bool,
        _ query: QueryParameters
    ) async -> Result<(profile: ProfileData, base: ProfileData?), ErrorResponse> {
        func decoded(_ response: Response) -> Result<ProfileData, ErrorResponse> {
            guard response.status == 200 else { return .failure(ErrorResponse(response: response)) }
            do {
                return .success(try ProfileData(decoding: response.body))
            } catch {
                return .failure(ErrorResponse(response: Self.error(500, "could not decode profile \(name): \(error)")))
            }
        }
        switch name {
        case "profile", "wall":
            // Two windows back to back for a diff: the earlier is the base.
            func window() async -> Result<ProfileData, ErrorResponse> {
                decoded(name == "profile" ? await cpuProfile(query) : await wallProfile(query))
            }
            var base: ProfileData?
            if diff {
                switch await window() {
                case .success(let profile): base = profile
                case .failure(let error): return .failure(error)
                }
            }
            return await window().map { ($0, base) }
        case _ where Self.godeltaprofEndpoints.contains(name):
            if diff || seconds != nil {
                return .failure(
                    ErrorResponse(
                        response: Self.error(
                            400,
                            "\(name) is already the change since its previous request: it takes neither seconds nor diff"
                        )
                    )
                )
            }
            guard let response = await godeltaprofProfile(named: name, QueryParameters("")) else {
                return .failure(ErrorResponse(response: Self.error(400, "unknown profile \"\(name)\"")))
            }
            return decoded(response).map { ($0, nil) }
        default:
            guard let profile = Profile.lookup(name) else {
                return .failure(ErrorResponse(response: Self.error(400, "unknown profile \"\(name)\"")))
            }
            guard let seconds else {
                if diff {
                    return .failure(
                        ErrorResponse(
                            response: Self.error(400, "diff needs seconds=N: the base is the profile N seconds earlier")
                        )
                    )
                }
                do {
                    return .success((try Self.collect(profile), nil))
                } catch {
                    return .failure(ErrorResponse(response: Self.error(500, "failed to collect profile: \(error)")))
                }
            }
            if !diff {
                return decoded(await deltaProfile(profile, String(seconds), QueryParameters(""))).map { ($0, nil) }
            }
            switch await snapshots(of: profile, seconds: seconds) {
            case .success(let pair): return .success((pair.after, pair.before))
            case .failure(let error): return .failure(error)
            }
        }
    }
}
