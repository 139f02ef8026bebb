import CPprof
import Foundation
import Testing

@testable import Pprof

#if canImport(Runtime)
    import Runtime
#endif

/// The return address into the function that called this one, minus one: a call PC in the caller.
@inline(never) func callPCOfCaller() -> UInt {
    var entries = [UInt](repeating: 0, count: 2)
    let count = pp_capture_stack(1, &entries, 2, nil)
    return count > 0 ? entries[0] - 1 : 0
}

let knownSiteDeclarationLine = #line + 1
@inline(never) func knownCallSite() -> (pc: UInt, line: Int) {
    (callPCOfCaller(), #line)
}

@Suite struct SymbolizerTests {
    @Test func namesFileLineAndStartLineOfAKnownCallSite() throws {
        let (pc, line) = knownCallSite()
        let frames = Symbolizer.shared.frames(at: pc)
        let frame = try #require(frames.first)
        #expect(frame.name.contains("knownCallSite"), "\(frame.name)")
        #expect(frame.systemName.hasPrefix("$s"), "mangled Swift name expected: \(frame.systemName)")
        #expect(demangle(frame.systemName) == frame.name)
        #expect(frame.file == #filePath)
        #expect(frame.line == line)
        #expect(frame.startLine == knownSiteDeclarationLine)
        #expect(frame.entry != 0 && frame.entry <= pc && pc - frame.entry < 4096)
        // The entry is the function's own address: symbolizing it names the same function.
        #expect(Symbolizer.shared.frames(at: frame.entry).first?.systemName == frame.systemName)
        let image = try #require(Symbolizer.shared.image(containing: pc))
        #expect(image.isMainExecutable)
        #expect(image.buildID != nil)
    }

    @Test func batchLookupAgreesWithSingleLookups() throws {
        let (pc, _) = knownCallSite()
        let libc = try #require(functionAddress("qsort"))
        let addresses = [pc, libc + 4, 0x10, pc, libc + 4]
        let fresh = Symbolizer()
        let batch = fresh.frames(at: addresses)
        #expect(batch.count == addresses.count)
        for (index, address) in addresses.enumerated() {
            #expect(batch[index] == Symbolizer().frames(at: address), "address \(index)")
        }
        #expect(batch[2].isEmpty, "an address in no image has no frames")
        #expect(!batch[0].isEmpty && !batch[1].isEmpty)
    }

    @Test(arguments: ["qsort", "getpid", "fopen", "pthread_mutex_lock"])
    func glibcFunctionsResolveByName(_ name: String) throws {
        let address = try #require(functionAddress(name))
        let frames = Symbolizer.shared.frames(at: address + 1)
        // With glibc's debug file (libc6-dbg) the function may have inlined frames; the physical
        // (last) frame is the exported function either way.
        let physical = try #require(frames.last)
        #expect(physical.name == name)
        #expect(physical.systemName == name)
        #expect(physical.entry == address)
        let image = try #require(Symbolizer.shared.image(containing: address))
        #expect(image.path.contains("libc.so"))
    }

    @Test func swiftRuntimeFunctionsResolveByName() throws {
        let retain = try #require(functionAddress("swift_retain"))
        #expect(Symbolizer.shared.frames(at: retain + 1).last?.name == "swift_retain")

        // String.count's getter, exported by libswiftCore under its mangled name.
        let mangled = "$sSS5countSivg"
        let count = try #require(functionAddress(mangled))
        let frame = try #require(Symbolizer.shared.frames(at: count + 1).last)
        #expect(frame.systemName == mangled)
        #expect(frame.name == "Swift.String.count.getter : Swift.Int")
        #expect(Symbolizer.shared.image(containing: count)?.path.hasSuffix("libswiftCore.so") == true)
    }

    @Test func vdsoFunctionsResolveFromMemory() throws {
        guard let vdso = dlopen("linux-vdso.so.1", RTLD_NOW | RTLD_NOLOAD) else { return }  // no vDSO here
        defer { dlclose(vdso) }
        let symbol = try #require(dlsym(vdso, "__vdso_clock_gettime"))
        let address = UInt(bitPattern: symbol)
        let image = try #require(Symbolizer.shared.image(containing: address))
        #expect(image.path == "[vdso]")
        let frame = try #require(Symbolizer.shared.frames(at: address + 1).last)
        #expect(frame.name.hasSuffix("clock_gettime"), "\(frame.name)")
        #expect(frame.entry == address)
    }

    @Test func demanglesSwiftAndCxxNames() {
        #expect(demangle("$sSS5countSivg") == "Swift.String.count.getter : Swift.Int")
        #expect(demangle("$sSa6appendyyxnF") == "Swift.Array.append(__owned A) -> ()")
        #expect(demangle("_ZN7fixture3BoxIiE6scaledEi") == "fixture::Box<int>::scaled(int)")
        #expect(demangle("_ZNK7fixture3BoxIiE6scaledEi") == "fixture::Box<int>::scaled(int) const")
        #expect(demangle("malloc") == "malloc")
        #expect(demangle("$sNotReallyMangled") == "$sNotReallyMangled")
        #expect(demangle("_Znot_a_cxx_name") == "_Znot_a_cxx_name")
    }

    /// Every funclet of an async function is named as the function: the demangler's "(1) await
    /// resume partial function for" and "suspend resume" forms, and the mangled suffixes.
    @Test func namesAsyncFuncletsAsTheirFunction() {
        let function = "main.foo() async -> ()"
        #expect(demangle("$s4main3fooyyYaF") == function)
        for suffix in ["TQ0_", "TY0_", "TQ1_", "TY12_", "TQ_", "TY_"] {
            #expect(demangle("$s4main3fooyyYaF" + suffix) == function, "\(suffix)")
            #expect(asyncFuncletFunction(mangled: "$s4main3fooyyYaF" + suffix) == "$s4main3fooyyYaF")
        }
        #expect(demangle("$s4main3fooyyYaFTQ0_@plt") == function + "@plt")
        // A clone suffix before the funclet's goes with it.
        #expect(asyncFuncletFunction(mangled: "$s4main3fooyyYaF.37TQ0_") == "$s4main3fooyyYaF")
        #expect(demangle("$s4main3fooyyYaF.37TQ0_") == function)
        #expect(foldingAsyncFunclet("(1) suspend resume partial function for \(function)") == function)
        #expect(foldingAsyncFunclet("(2) await resume partial function for \(function)") == function)
        #expect(foldingAsyncFunclet("resume partial function for \(function)") == function)
        #expect(foldingAsyncFunclet("(12) await resume partial function for X.f()") == "X.f()")
        // Not funclets: left alone.
        #expect(foldingAsyncFunclet("(1) something else") == "(1) something else")
        #expect(foldingAsyncFunclet("closure #1 in f()") == "closure #1 in f()")
        #expect(asyncFuncletFunction(mangled: "$sSS5countSivg") == nil)
        #expect(asyncFuncletFunction(mangled: "$sTQ0_") == nil)
        #expect(asyncFuncletFunction(mangled: "main_TQ0_") == nil)
    }

    /// A library loaded after the symbolizer first ran is picked up; once it is unloaded its
    /// addresses no longer name its functions.
    @Test func picksUpDlopenAndForgetsDlclose() throws {
        guard
            let library = try Fixtures.build(
                "libpprof-fixture.so",
                source: Fixtures.librarySource,
                name: "library.c",
                compiler: Tools.find("cc") != nil ? "cc" : "clang",
                flags: ["-shared", "-fPIC", "-O1", "-g"]
            )
        else { return }
        let symbolizer = Symbolizer()
        let (pc, _) = knownCallSite()
        #expect(!symbolizer.frames(at: pc).isEmpty)  // the image list is now loaded

        let handle = try #require(dlopen(library, RTLD_NOW | RTLD_LOCAL))
        let function = try #require(dlsym(handle, "pprof_fixture_library_function"))
        let address = UInt(bitPattern: function)
        let frames = symbolizer.frames(at: address + 1)
        let frame = try #require(frames.last)
        #expect(frame.name == "pprof_fixture_library_function")
        #expect(frame.file.hasSuffix("/library.c"))
        #expect(frame.startLine == 1)
        #expect(symbolizer.image(containing: address)?.path == library)

        #expect(dlclose(handle) == 0)
        if symbolizer.image(containing: address)?.path != library {
            #expect(symbolizer.frames(at: address + 1).map(\.name) != frames.map(\.name))
        }
    }

    /// Many threads symbolizing at once, each image loading on first use under contention, give
    /// the same answers as one thread.
    @Test func concurrentLookupsAgreeWithSerialOnes() async throws {
        let (pc, _) = knownCallSite()
        var addresses = [pc]
        for name in ["qsort", "getpid", "swift_retain", "$sSS5countSivg", "malloc", "free"] {
            if let address = functionAddress(name) { addresses += [address + 1, address + 5] }
        }
        let expected = Symbolizer().frames(at: addresses)
        let shared = Symbolizer()
        let chosen = addresses
        let results = await withTaskGroup(of: [[SymbolFrame]].self) { group in
            for task in 0..<16 {
                group.addTask {
                    // Alternate the batch and single-address paths, in different orders.
                    let order = task % 2 == 0 ? chosen : chosen.reversed()
                    let frames = task % 4 < 2 ? shared.frames(at: order) : order.map { shared.frames(at: $0) }
                    return task % 2 == 0 ? frames : frames.reversed()
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 16)
        #expect(results.allSatisfy { $0 == expected })
    }

    /// Symbolizing a library must not leave its file mapped: the Runtime module's `ImageMap` (and
    /// Swift's crash backtracer) would take such a mapping for the library's base address. Checked
    /// with libswiftCore (symbols only) and a library with embedded DWARF.
    @Test func leavesNoMappingOfLibraryFilesBehind() throws {
        var addresses: [UInt] = []
        for name in ["swift_retain", "swift_release", "$sSS5countSivg"] {
            if let address = functionAddress(name) { addresses.append(address + 2) }
        }
        var handle: UnsafeMutableRawPointer?
        if let library = try Fixtures.build(
            "libpprof-fixture-mapped.so",
            source: Fixtures.librarySource.replacingOccurrences(of: "library_function", with: "mapped_function"),
            name: "library-mapped.c",
            compiler: Tools.find("cc") != nil ? "cc" : "clang",
            flags: ["-shared", "-fPIC", "-O1", "-g"]
        ) {
            handle = dlopen(library, RTLD_NOW | RTLD_LOCAL)
            let function = try #require(handle.flatMap { dlsym($0, "pprof_fixture_mapped_function") })
            addresses.append(UInt(bitPattern: function) + 2)
        }
        defer { if let handle { dlclose(handle) } }

        let libraries = Set(addresses.compactMap { Symbolizer.shared.image(containing: $0)?.path })
        func mappings() -> [String: Int] {
            Dictionary(grouping: ProcessMaps.current().filter { libraries.contains($0.path) }, by: \.path)
                .mapValues(\.count)
        }
        let before = mappings()
        let symbolizer = Symbolizer()
        let frames = symbolizer.frames(at: addresses)
        #expect(frames.allSatisfy { !$0.isEmpty })
        if handle != nil { #expect(frames.last?.first?.line != 0, "the fixture library has DWARF") }
        // Other tests load images concurrently: their mappings are transient, a leaked one is not.
        #expect(eventually { mappings() == before }, "the symbolizer keeps library files mapped")
        #if canImport(Runtime)
            let placed = eventually {
                let images = ImageMap.capture()
                return addresses.allSatisfy { address in
                    images.indexOfImage(at: Backtrace.Address(UInt64(address))).map { images[$0].path }
                        == Symbolizer.shared.image(containing: address)?.path
                }
            }
            #expect(placed, "the Runtime module's ImageMap misplaces a library")
        #endif
        withExtendedLifetime(symbolizer) {}
    }

    /// A library's function names are read from its file on demand, not copied: every name reads
    /// the same as a copy would, the table holds a fraction of the copy's heap, and the names
    /// still come from the file that was loaded.
    @Test func libraryNamesAreReadFromTheFileAndMatchCopies() throws {
        let count = try #require(functionAddress("$sSS5countSivg"))
        let path = try #require(Symbolizer.shared.image(containing: count)?.path)
        let read = try ImageSymbolizer(path: path, debugDirectories: [], keepsFileMapped: false)
        let copied = try ImageSymbolizer(
            path: path,
            debugDirectories: [],
            keepsFileMapped: false,
            copiesSymbolNames: true
        )
        let readNames = read.allSymbols()
        #expect(readNames.count > 10_000, "libswiftCore has tens of thousands of functions")
        #expect(readNames.map(\.start) == copied.allSymbols().map(\.start))
        #expect(readNames.map(\.name) == copied.allSymbols().map(\.name))
        let (symbols, heap) = read.symbolTableSize
        #expect(heap <= 20 * symbols, "\(heap) bytes for \(symbols) symbols")
        #expect(heap * 3 < copied.symbolTableSize.heapBytes)
        let image = try #require(Symbolizer.shared.image(containing: count))
        let frames = read.frames(atFileAddress: UInt64(count - image.loadBias) + 2)
        #expect(frames.first?.systemName == "$sSS5countSivg")
    }

    @Test func addressesOutsideAnyImageHaveNoFrames() {
        #expect(Symbolizer.shared.frames(at: 0x1000).isEmpty)
        #expect(Symbolizer.shared.frames(at: UInt.max - 16).isEmpty)
        var local = 0
        let stackAddress = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
        #expect(Symbolizer.shared.frames(at: stackAddress).isEmpty)
    }

    /// Whether `condition` holds within a second.
    private func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<50 {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    private func functionAddress(_ name: String) -> UInt? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { UInt(bitPattern: $0) }
    }
}
