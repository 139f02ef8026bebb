import Foundation
import Pprof
import Testing

@testable import PprofPyroscope

@Suite struct ConfigurationTests {
    @Test func environmentGivesEverySetting() throws {
        let configuration = try #require(
            try PyroscopeConfiguration(environment: [
                "PYROSCOPE_SERVER_ADDRESS": " https://profiles.example.com/ ",
                "PYROSCOPE_APPLICATION_NAME": "checkout{env=prod}",
                "PYROSCOPE_BASIC_AUTH_USER": "123456",
                "PYROSCOPE_BASIC_AUTH_PASSWORD": "secret",
                "PYROSCOPE_TENANT_ID": "team-a",
                "PYROSCOPE_TAGS": "region=eu-west-1, zone = b",
                "PYROSCOPE_HTTP_HEADERS": "X-Extra: one\nX-Other: two; X-Third:3",
                "PYROSCOPE_UPLOAD_INTERVAL": "15s",
                "PYROSCOPE_PROFILES": "cpu, heap,mutex",
                "PYROSCOPE_API": "ingest",
                "PYROSCOPE_SAMPLING_RATE": "250",
            ])
        )
        #expect(configuration.serverURL == "https://profiles.example.com/")
        #expect(configuration.applicationName == "checkout{env=prod}")
        #expect(configuration.authentication == .basic(user: "123456", password: "secret"))
        #expect(configuration.tenantID == "team-a")
        #expect(configuration.tags == ["region": "eu-west-1", "zone": "b"])
        #expect(configuration.headers == ["X-Extra": "one", "X-Other": "two", "X-Third": "3"])
        #expect(configuration.uploadInterval == .seconds(15))
        #expect(configuration.profiles == [.cpu, .heap, .mutex])
        #expect(configuration.api == .ingest)
        #expect(configuration.cpuRate == 250)
    }

    @Test func noServerAddressMeansOff() throws {
        #expect(try PyroscopeConfiguration(environment: [:]) == nil)
        #expect(try PyroscopeConfiguration(environment: ["PYROSCOPE_SERVER_ADDRESS": "  "]) == nil)
        let defaults = try #require(
            try PyroscopeConfiguration(environment: ["PYROSCOPE_SERVER_ADDRESS": "http://pyroscope:4040"])
        )
        #expect(defaults.applicationName == "swift-service")
        #expect(defaults.api == .push)
        #expect(defaults.profiles == .all)
        #expect(defaults.uploadInterval == .seconds(10))
        #expect(defaults.authentication == .none)
        let bearer = try #require(
            try PyroscopeConfiguration(environment: [
                "PYROSCOPE_SERVER_ADDRESS": "http://pyroscope:4040", "PYROSCOPE_AUTH_TOKEN": "tok",
            ])
        )
        #expect(bearer.authentication == .bearer(token: "tok"))
    }

    @Test(arguments: [
        ("PYROSCOPE_UPLOAD_INTERVAL", "soon", "PYROSCOPE_UPLOAD_INTERVAL"),
        ("PYROSCOPE_UPLOAD_INTERVAL", "100ms", "outside 1 s"),
        ("PYROSCOPE_PROFILES", "cpu,wall", "unknown profile 'wall'"),
        ("PYROSCOPE_API", "grpc", "neither push nor ingest"),
        ("PYROSCOPE_SAMPLING_RATE", "fast", "not a whole number"),
        ("PYROSCOPE_SAMPLING_RATE", "0", "outside 1…10000"),
        ("PYROSCOPE_TAGS", "region", "not name=value"),
        ("PYROSCOPE_TAGS", "9lives=yes", "not a valid label name"),
        ("PYROSCOPE_HTTP_HEADERS", "NoColon", "not name:value"),
        ("PYROSCOPE_SERVER_ADDRESS", "pyroscope:4040", "not an http:// or https:// URL"),
    ])
    func invalidValuesNameTheirVariable(variable: String, value: String, reason: String) {
        var environment = ["PYROSCOPE_SERVER_ADDRESS": "http://pyroscope:4040"]
        environment[variable] = value
        do {
            _ = try PyroscopeConfiguration(environment: environment)
            Issue.record("\(variable)=\(value) was accepted")
        } catch {
            #expect("\(error)".contains(reason), "\(error)")
        }
    }

    @Test func exporterRejectsAnInvalidConfiguration() {
        var configuration = PyroscopeConfiguration(serverURL: "http://127.0.0.1:1", applicationName: "{env=prod}")
        #expect(throws: PprofError.self) { try PyroscopeExporter(configuration: configuration) }
        configuration.applicationName = "app"
        configuration.queueCapacity = 0
        #expect(throws: PprofError.self) { try PyroscopeExporter(configuration: configuration) }
        configuration.queueCapacity = 1
        configuration.profiles = []
        #expect(throws: PprofError.self) { try PyroscopeExporter(configuration: configuration) }
        configuration.profiles = .all
        #expect(throws: Never.self) { try PyroscopeExporter(configuration: configuration) }
    }

    /// Series labels: `__name__`, `service_name`, the application name's labels, then the tags
    /// (a tag overrides the same label in the name); `__delta__="false"` on client-side deltas.
    @Test func seriesLabelsAndIngestName() {
        let encoding = UploadEncoding(
            configuration: PyroscopeConfiguration(
                serverURL: "http://x",
                applicationName: "checkout{env=prod,region=us}",
                tags: ["region": "eu", "pod": "a b"]
            )
        )
        let cpu = CollectedProfile(kind: .cpu, bytes: [], startNanos: 1, endNanos: 2)
        let block = CollectedProfile(kind: .block, bytes: [], startNanos: 1, endNanos: 2)
        let labels = Dictionary(uniqueKeysWithValues: encoding.seriesLabels(cpu))
        #expect(
            labels == [
                "__name__": "process_cpu", "service_name": "checkout", "env": "prod", "region": "eu", "pod": "a b",
            ]
        )
        #expect(Dictionary(uniqueKeysWithValues: encoding.seriesLabels(block))["__delta__"] == "false")
        #expect(encoding.ingestName == "checkout{env=prod,pod=a b,region=eu}")
        let request = encoding.ingestRequest(cpu)
        #expect(
            request.target.hasPrefix("/ingest?name=checkout%7Benv%3Dprod%2Cpod%3Da%20b%2Cregion%3Deu%7D&from=1&until=2")
        )
        #expect(request.target.contains("sampleRate=100"))
    }
}
