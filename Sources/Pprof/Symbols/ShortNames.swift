/// Which form of a Swift function's name profiles show.
public enum FunctionNameStyle: Sendable, Hashable {
    /// The name people read, like `swift demangle --simplified` but with module names:
    /// `hcpu.hotB(_:_:)`, `hcpu.Worker.run(x:)`, `closure #1 in hcpu.f()`. Argument and result
    /// types go; generic specializations, partial-apply forwarders, dispatch thunks and async
    /// funclets are named as the function they belong to. The mangled name stays in the
    /// function's `system_name`.
    case short
    /// The whole demangled signature: `hcpu.hotB(Swift.Int, Swift.UInt64) -> Swift.UInt64`,
    /// `generic specialization <Swift.Int> of hcpu.gen<A where A: Swift.Numeric>(A) -> A`.
    case full
}

/// The name a profile shows for a frame: `name` (demangled in full) shortened when `style` is
/// `.short` and `systemName` is a mangled Swift name; other names (C, C++) are left as they are.
func displayName(_ name: String, systemName: String, style: FunctionNameStyle) -> String {
    guard style == .short, isSwiftMangled(systemName), name != systemName else { return name }
    return shortSwiftName(name)
}

extension SymbolFrame {
    /// The frame's name in the form `Profile.functionNames` sets (the texts and endpoints that
    /// name frames outside a built profile).
    var displayName: String { Pprof.displayName(name, systemName: systemName, style: Profile.functionNames) }
}

private func isSwiftMangled(_ name: String) -> Bool {
    var bytes = name.utf8.makeIterator()
    let first = bytes.next()
    let second = bytes.next()
    return (first == UInt8(ascii: "$") && (second == UInt8(ascii: "s") || second == UInt8(ascii: "S")))
        || (first == UInt8(ascii: "_") && second == UInt8(ascii: "T") && bytes.next() == UInt8(ascii: "0"))
}

/// Shortens a demangled Swift name (the runtime demangler's full form) the way
/// `swift demangle --simplified` prints it, keeping module names unless `keepsModules` is false
/// (which is `--simplified` exactly, for comparing with it), and folding specializations,
/// partial-apply forwarders, dispatch thunks and async funclets into their function. A name it
/// cannot follow comes back as far as it got, never worse than the input.
package func shortSwiftName(_ demangled: String, keepsModules: Bool = true) -> String {
    var parser = ShortNameParser(Array(demangled.utf8), keepsModules: keepsModules)
    parser.entity(until: .end)
    if parser.has(" with unmangled suffix ") { parser.index = parser.text.count }
    if parser.index < parser.text.count {
        // Not understood: the rest as it is.
        parser.output.append(contentsOf: parser.text[parser.index...])
    }
    return String(decoding: parser.output, as: UTF8.self)
}

/// A recursive-descent reader of the demangler's output (see swift/lib/Demangling/NodePrinter.cpp
/// for the forms): entities are qualified paths, optionally with a parameter list or an
/// entity type, after prefixes like `closure #1 … in` or `protocol witness for`.
private struct ShortNameParser {
    let text: [UInt8]
    let keepsModules: Bool
    var index = 0
    var output: [UInt8] = []

    init(_ text: [UInt8], keepsModules: Bool) {
        self.text = text
        self.keepsModules = keepsModules
        output.reserveCapacity(text.count)
    }

    /// Where an entity or a type ends, besides the end of the text.
    enum Stop {
        case end
        /// ` in ` (the context of a closure or local function follows), ` in conformance `.
        case inContext
        /// ` to ` of a reabstraction thunk.
        case to
        /// ` and conformance `.
        case andConformance
        /// ` : ` between a conforming type and its protocol.
        case colon
    }

    // MARK: Entities

    /// Prefixes that name code belonging to the function that follows: dropped.
    static let foldedPrefixes: [[UInt8]] = [
        "partial apply forwarder for ", "dispatch thunk of ", "merged ",
        "await resume partial function for ", "suspend resume partial function for ",
        "resume partial function for ",
    ].map { Array($0.utf8) }
    /// Specialization prefixes: `<kind> specialization <…> of `.
    static let specializationKinds: [[UInt8]] = [
        "generic specialization ", "generic partial specialization ", "function signature specialization ",
        "generic not re-abstracted specialization ", "inlined generic function ",
    ].map { Array($0.utf8) }
    /// Prefixes kept as they are, followed by an entity or a type.
    static let keptPrefixes: [[UInt8]] = [
        "static ", "variable initialization expression of ", "one-time initialization function for ",
        "one-time initialization token for ", "@objc ", "type metadata accessor for ",
        "type metadata completion function for ", "type metadata instantiation function for ",
        "instantiation function for generic protocol witness table for ", "outlined bridged method ",
        "key path equality operator for ", "key path hash function for ",
        "type metadata for ", "nominal type descriptor for ", "reflection metadata field descriptor ",
        "lazy cache variable for type metadata for ", "associated type metadata accessor for ",
        "protocol witness table for ", "lazy protocol witness table cache variable for type ",
        "property descriptor for ", "method descriptor for ", "async function pointer to ",
        "coroutine continuation prototype for ", "autoclosure thunk ",
        "distributed thunk ", "distributed accessor for ", "back deployment fallback for ",
        "back deployment thunk for ", "runtime attribute generator of ", "type metadata demangling cache variable for ",
        "opaque type descriptor accessor for ", "opaque type descriptor for ", "default override of ",
    ].map { Array($0.utf8) }
    /// Value witness functions: `destroy value witness for T` reads `destroy for T`.
    static let valueWitnessSuffix = Array(" value witness for ".utf8)

    /// Reads one entity and writes its short form.
    mutating func entity(until stop: Stop) {
        while index < text.count {
            if foldPrefix() { continue }
            if let prefix = Self.keptPrefixes.first(where: { has($0) }) {
                take(prefix)
                continue
            }
            break
        }
        if has("implicit closure #") {
            take("implicit ")
        }
        if has("protocol witness for ") {
            take("protocol witness for ")
            entity(until: .inContext)
            if has(" in conformance ") {
                take(" in conformance ")
                conformance()
            }
            return
        }
        if has("lazy protocol witness table accessor for type ") {
            take("lazy protocol witness table accessor for type ")
            type(until: .andConformance)
            if has(" and conformance ") {
                take(" and conformance ")
                conformance()
            }
            return
        }
        if has("base witness table accessor for ") {
            // `for P in T : Q in M` → `for P in T`
            take("base witness table accessor for ")
            type(until: .inContext)
            if has(" in ") {
                take(" in ")
                conformance()
            }
            return
        }
        if has("associated type witness table accessor for ") {
            // `for P.A : Q in T : P in M` → `for P.A : Q in T`
            take("associated type witness table accessor for ")
            type(until: .colon)
            if has(" : ") { take(" : ") }
            type(until: .inContext)
            if has(" in ") {
                take(" in ")
                conformance()
            }
            return
        }
        if has("reabstraction thunk helper ") || has("reabstraction thunk ") {
            skip(has("reabstraction thunk helper ") ? "reabstraction thunk helper " : "reabstraction thunk ")
            if has("<") {
                // The thunk's generic signature.
                index = groupEnd(from: index)
                skip(" ")
            }
            if has("from ") { skip("from ") }
            emit("thunk for ")
            type(until: .to)
            if has(" to ") {
                skip(" to ")
                skipType(until: stop)
            }
            return
        }
        if let wordEnd = valueWitnessPrefix() {
            // `destroy value witness for T` → `destroy for T`.
            output.append(contentsOf: text[index..<wordEnd])
            index = wordEnd + Self.valueWitnessSuffix.count
            emit(" for ")
            type(until: stop)
            return
        }
        if has("key path getter for ") || has("key path setter for ") {
            // `for T.x : Int : T` → `for T.x : T`, the key path's root.
            take(has("key path getter for ") ? "key path getter for " : "key path setter for ")
            path(entityIsLocalContext: false)
            if has(" : ") {
                index += 3
                let root = typeEnd(from: index, until: .colon)
                if root < text.count {
                    index = root
                    take(" : ")
                    type(until: stop)
                } else {
                    index = root
                }
            }
            return
        }
        if has("outlined variable #") {
            take("outlined variable #")
            while index < text.count, text[index] != UInt8(ascii: " ") { copyByte() }
            if has(" of ") { take(" of ") }
            entity(until: stop)
            return
        }
        if has("outlined "), let of = firstWord(" of ") {
            // `outlined copy of`, `outlined enum get tag of`: a type follows.
            while index < of + 4 { copyByte() }
            type(until: stop)
            return
        }
        if has("default argument ") {
            take("default argument ")
            while index < text.count, text[index] != UInt8(ascii: " ") { copyByte() }
            if has(" of ") { take(" of ") }
            entity(until: stop)
            return
        }
        if index < text.count,
            text[index] == UInt8(ascii: "(") || text[index] == UInt8(ascii: "[")
                || text[index] == UInt8(ascii: "<"), !startsPrivateName(), !has("(extension in ")
        {
            // A type (`outlined copy of (A, B)`).
            type(until: stop)
            return
        }
        path(entityIsLocalContext: false)
        afterPath(until: stop)
    }

    func startsPrivateName() -> Bool {
        guard text[index] == UInt8(ascii: "("), let close = matchingClose(from: index) else { return false }
        return isPrivateName(index, close)
    }

    /// Drops one specialization, forwarder or funclet prefix; false when there is none.
    mutating func foldPrefix() -> Bool {
        if let prefix = Self.foldedPrefixes.first(where: { has($0) }) {
            index += prefix.count
            return true
        }
        if text[index] == UInt8(ascii: "(") {
            // `(2) await resume partial function for`
            var end = index + 1
            while end < text.count, isDigit(text[end]) { end += 1 }
            if end > index + 1, end + 1 < text.count, text[end] == UInt8(ascii: ")"), text[end + 1] == UInt8(ascii: " ")
            {
                let saved = index
                index = end + 2
                if let prefix = Self.foldedPrefixes.first(where: { has($0) }) {
                    index += prefix.count
                    return true
                }
                index = saved
            }
        }
        if let kind = Self.specializationKinds.first(where: { has($0) }) {
            // `generic specialization <Swift.Int> of f`; the brackets may hold anything, even `->`.
            let saved = index
            index += kind.count
            if index < text.count, text[index] == UInt8(ascii: "<") {
                index = groupEnd(from: index)
                if has(" of ") {
                    index += 4
                    return true
                }
            }
            index = saved
        }
        return false
    }

    /// The index of `literal` if it follows within the next few words of plain text.
    func firstWord(_ literal: StaticString) -> Int? {
        var probe = self
        while probe.index < text.count, probe.index < index + 48 {
            let byte = text[probe.index]
            if probe.has(literal) { return probe.index }
            guard isIdentifierByte(byte) || byte == UInt8(ascii: " ") else { return nil }
            probe.index += 1
        }
        return nil
    }

    /// The end of the word before ` value witness for ` at `index`, if that is what is there.
    func valueWitnessPrefix() -> Int? {
        var end = index
        while end < text.count, isIdentifierByte(text[end]) { end += 1 }
        guard end > index else { return nil }
        var probe = self
        probe.index = end
        return probe.has(Self.valueWitnessSuffix) ? end : nil
    }

    /// `T : P in M` of a conformance: `T`.
    mutating func conformance() {
        type(until: .colon)
        // ` : Protocol in Module` names the conformance in full: dropped.
        if has(" : ") { index = text.count }
    }

    /// What follows an entity's path: a parameter list, an entity type, the type of a closure or
    /// local function and its context, or an unmangled suffix.
    mutating func afterPath(until stop: Stop) {
        while index < text.count {
            if has(" with unmangled suffix ") {
                index = text.count
                return
            }
            let byte = text[index]
            if byte == UInt8(ascii: "(") {
                parameterList()
                effectsAndResult(until: stop)
                continue
            }
            if byte == UInt8(ascii: "@"), let space = text[index...].firstIndex(of: UInt8(ascii: " ")) {
                // `onServerRunning@Sendable (…)`
                while index <= space { copyByte() }
                continue
            }
            if stop == .colon && has(" : ") { return }
            if stop != .inContext && has(" in ") {
                // A member of a local type: `f() in T #1 in g()`.
                take(" in ")
                contextEntity(until: stop)
                return
            }
            if has(" : ") {
                // The entity's type (`x.getter : Swift.Int`): dropped.
                index += 3
                skipType(until: stop)
                continue
            }
            if byte == UInt8(ascii: " "), index + 1 < text.count, text[index + 1] == UInt8(ascii: "#") {
                localEntity(until: stop)
                return
            }
            if byte == UInt8(ascii: "."), index + 1 < text.count, isIdentifierByte(text[index + 1]) {
                // `(f in _HASH).getter`, `….modify`: more path.
                copyByte()
                path(entityIsLocalContext: false, continuing: true)
                continue
            }
            return
        }
    }

    /// `closure #1 (A) -> B in context` → `closure #1 in context`; a local function
    /// `add #1 (A, B) -> () in context` keeps its labels: `add #1 (_:_:) in context`.
    mutating func localEntity(until stop: Stop) {
        let nameStart = lastWordStart()
        let isClosure =
            String(decoding: output[nameStart...], as: UTF8.self).hasSuffix("closure")
        take(" #")
        while index < text.count, isDigit(text[index]) { copyByte() }
        if has(" ") && !has(" in ") {
            index += 1
            if isClosure {
                skipType(until: .inContext)
            } else if index < text.count,
                text[index] == UInt8(ascii: "(") || text[index] == UInt8(ascii: "@") || text[index] == UInt8(ascii: "<")
            {
                emit(" ")
                while has("<") { genericParameters() }
                while has("@"), let space = text[index...].firstIndex(of: UInt8(ascii: " ")) {
                    // `@Sendable (…)`
                    while index <= space { copyByte() }
                }
                parameterList()
                effectsAndResult(until: .inContext)
            } else {
                skipType(until: .inContext)
            }
        }
        if has(" in ") {
            take(" in ")
            contextEntity(until: stop)
        }
    }

    /// The context after ` in `: an entity, or a module alone (top-level code).
    mutating func contextEntity(until stop: Stop) {
        let start = output.count
        entity(until: stop)
        if !keepsModules, !output[start...].contains(where: { !isIdentifierByte($0) }) {
            // A bare module name: `--simplified` prints nothing.
            output.removeSubrange(start...)
        }
    }

    /// Start index in `output` of the word just written.
    func lastWordStart() -> Int {
        var start = output.count
        while start > 0, output[start - 1] != UInt8(ascii: ".") { start -= 1 }
        return start
    }

    // MARK: Paths

    /// A qualified name: `Module.Type<A where …>.(name in _HASH).method`, an operator
    /// (`Swift.Int.+ infix`), with `(extension in M):` before it dropped. `continuing` reads
    /// components after a `.` already written.
    mutating func path(entityIsLocalContext: Bool, continuing: Bool = false) {
        var components = continuing ? 1 : 0
        let start = output.count
        var firstComponentEnd: Int?
        while has("(extension in ") {
            // `(extension in M):Swift.Array…` — the extension's module: dropped.
            if let colon = text[index...].firstIndex(of: UInt8(ascii: ":")) { index = colon + 1 }
        }
        while index < text.count {
            let before = output.count
            if !component() { break }
            if output.count == before { break }
            components += 1
            if components == 1 { firstComponentEnd = output.count }
            while index < text.count, text[index] == UInt8(ascii: "<") {
                genericParameters()
            }
            if index + 1 < text.count, text[index] == UInt8(ascii: "."),
                isIdentifierByte(text[index + 1]) || text[index + 1] == UInt8(ascii: "(")
                    || (isOperatorByte(text[index + 1]) && operatorFollows(from: index + 1))
            {
                copyByte()
                continue
            }
            break
        }
        if !keepsModules, !continuing, components > 1, let end = firstComponentEnd,
            isModuleCandidate(output[start..<end])
        {
            // `--simplified` drops the module: the first component of a qualified name.
            output.removeSubrange(start..<(end + 1))
        }
        if !keepsModules, components == 1, let end = firstComponentEnd,
            output[start..<end].elementsEqual("__C".utf8)
        {
            output.removeSubrange(start..<end)
        }
    }

    /// One path component; false when there is none at `index`.
    mutating func component() -> Bool {
        guard index < text.count else { return false }
        let byte = text[index]
        if byte == UInt8(ascii: "(") {
            // `(name in _HASH)`: a private declaration, named without its discriminator.
            guard let close = matchingClose(from: index) else { return false }
            let inner = text[(index + 1)..<close]
            guard let space = inner.firstIndex(of: UInt8(ascii: " ")),
                inner[space...].starts(with: " in _".utf8)
            else { return false }
            output.append(contentsOf: text[(index + 1)..<space])
            index = close + 1
            return true
        }
        if isOperatorByte(byte), operatorFollows(from: index) {
            while index < text.count, text[index] != UInt8(ascii: " ") { copyByte() }
            // ` infix`, ` prefix`, ` postfix`
            for fixity in Self.fixities where has(fixity) {
                take(fixity)
                break
            }
            return true
        }
        guard isIdentifierByte(byte) else { return false }
        while index < text.count, isIdentifierByte(text[index]) { copyByte() }
        return true
    }

    static let fixities: [[UInt8]] = [" infix", " prefix", " postfix"].map { Array($0.utf8) }

    /// Whether an operator name (`==`, `..<`) followed by ` infix`/` prefix`/` postfix` starts here.
    func operatorFollows(from start: Int) -> Bool {
        var end = start
        while end < text.count, isOperatorByte(text[end]) { end += 1 }
        guard end > start else { return false }
        var probe = self
        probe.index = end
        return probe.has(" infix") || probe.has(" prefix") || probe.has(" postfix")
    }

    /// `<A, B where A: P>` → `<A, B>`; `< where A == B>` → `<>`; the arguments are types.
    mutating func genericParameters() {
        let end = groupEnd(from: index)
        copyByte()
        var limit = end - 1
        var depth = 0
        var position = index
        while position < end - 1 {
            let byte = text[position]
            if byte == UInt8(ascii: "(") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "<") {
                depth += 1
            } else if byte == UInt8(ascii: ")") || byte == UInt8(ascii: "]")
                || (byte == UInt8(ascii: ">") && text[position - 1] != UInt8(ascii: "-"))
            {
                depth -= 1
            } else if depth == 0, byte == UInt8(ascii: "w"), text[position...].starts(with: "where ".utf8),
                position == index || text[position - 1] == UInt8(ascii: " ")
            {
                limit = position == index ? position : position - 1
                break
            }
            position += 1
        }
        type(until: .end, limit: limit)
        index = end
        emit(">")
    }

    // MARK: Signatures

    /// `(x: Swift.Int, Swift.String)` → `(x:_:)`.
    mutating func parameterList() {
        let end = groupEnd(from: index)
        emit("(")
        var position = index + 1
        let close = end - 1
        var segmentStart = position
        var depth = 0
        while position <= close {
            let byte = text[position]
            if position == close || (byte == UInt8(ascii: ",") && depth == 0) {
                if position > segmentStart { label(of: segmentStart..<position) }
                segmentStart = position + 1
            } else if byte == UInt8(ascii: "(") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "<") {
                depth += 1
            } else if byte == UInt8(ascii: ")") || byte == UInt8(ascii: "]")
                || (byte == UInt8(ascii: ">") && text[position - 1] != UInt8(ascii: "-"))
            {
                depth -= 1
            }
            position += 1
        }
        emit(")")
        index = end
    }

    /// The label of one parameter, `label: Type` or `Type`, written as `label:` or `_:`.
    mutating func label(of range: Range<Int>) {
        var start = range.lowerBound
        while start < range.upperBound, text[start] == UInt8(ascii: " ") { start += 1 }
        var end = start
        while end < range.upperBound, isIdentifierByte(text[end]) { end += 1 }
        if end > start, end + 1 < range.upperBound, text[end] == UInt8(ascii: ":"), text[end + 1] == UInt8(ascii: " ") {
            output.append(contentsOf: text[start..<end])
        } else {
            emit("_")
        }
        emit(":")
    }

    /// ` async`, ` throws`, ` throws(E)`, ` -> Result` after a parameter list: dropped.
    mutating func effectsAndResult(until stop: Stop) {
        while index < text.count {
            if has(" async") && !isIdentifierByte(byte(at: index + 6)) {
                index += 6
            } else if has(" reasync") && !isIdentifierByte(byte(at: index + 8)) {
                index += 8
            } else if has(" throws(") {
                index = groupEnd(from: index + 7)
            } else if has(" throws") && !isIdentifierByte(byte(at: index + 7)) {
                index += 7
            } else if has(" rethrows") && !isIdentifierByte(byte(at: index + 9)) {
                index += 9
            } else if has(" -> ") {
                index += 4
                skipType(until: stop)
            } else {
                return
            }
        }
    }

    // MARK: Types

    /// Writes a type, module names dropped from its paths if `keepsModules` is false.
    mutating func type(until stop: Stop, limit: Int? = nil) {
        let end = limit ?? typeEnd(from: index, until: stop)
        while index < end {
            let byte = text[index]
            if isIdentifierByte(byte) && !isDigit(byte) || has("(extension in ") {
                let wordStart = index
                var wordEnd = index
                while wordEnd < end, isIdentifierByte(text[wordEnd]) { wordEnd += 1 }
                // Keywords and attributes are copied; names are paths.
                let word = text[wordStart..<wordEnd]
                if wordEnd < end, text[wordEnd] == UInt8(ascii: " "),
                    Self.typeKeywords.contains(where: { $0.elementsEqual(word) })
                {
                    while index <= wordEnd { copyByte() }
                    continue
                }
                pathInType(end: end)
                if has(" #"), isDigit(self.byte(at: index + 2)) {
                    // A local type: `Failure #1 in f()`.
                    localEntity(until: stop)
                    return
                }
                continue
            }
            if byte == UInt8(ascii: "(") {
                let close = matchingClose(from: index) ?? end
                if close < end, isPrivateName(index, close) {
                    pathInType(end: end)
                    continue
                }
            }
            if byte == UInt8(ascii: "<"), index + 1 < end,
                text[index + 1] == UInt8(ascii: " ") || isIdentifierByte(text[index + 1])
            {
                // `<A where …> T`, a generic signature in front of a type.
                genericParameters()
                continue
            }
            copyByte()
        }
        index = max(index, end)
    }

    static let typeKeywords: [[UInt8]] = [
        "inout", "__owned", "__shared", "some", "any", "each", "repeat", "sending", "borrowing", "consuming",
        "isolated",
    ].map { Array($0.utf8) }

    /// A path inside a type (no parameter lists): components, generic arguments as types.
    mutating func pathInType(end: Int) {
        let start = output.count
        var components = 0
        var firstEnd = 0
        while has("(extension in ") {
            if let colon = text[index...].firstIndex(of: UInt8(ascii: ":")) { index = colon + 1 }
        }
        while index < end {
            let before = output.count
            if text[index] == UInt8(ascii: "("), let close = matchingClose(from: index), isPrivateName(index, close) {
                let space = text[(index + 1)..<close].firstIndex(of: UInt8(ascii: " "))!
                output.append(contentsOf: text[(index + 1)..<space])
                index = close + 1
            } else {
                while index < end, isIdentifierByte(text[index]) { copyByte() }
            }
            if output.count == before { break }
            components += 1
            if components == 1 { firstEnd = output.count }
            while index < end, text[index] == UInt8(ascii: "<") {
                genericParameters()
            }
            if index + 1 < end, text[index] == UInt8(ascii: "."),
                isIdentifierByte(text[index + 1]) || text[index + 1] == UInt8(ascii: "(")
            {
                copyByte()
                continue
            }
            break
        }
        if !keepsModules, components > 1, isModuleCandidate(output[start..<firstEnd]) {
            output.removeSubrange(start..<(firstEnd + 1))
        }
    }

    /// Generic parameters (`A`, `A1`, `τ_0_0`) begin paths like `A.Element` without a module.
    func isModuleCandidate(_ name: ArraySlice<UInt8>) -> Bool {
        guard let first = name.first else { return false }
        if first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z"), name.dropFirst().allSatisfy(isDigit) { return false }
        return true
    }

    func isPrivateName(_ open: Int, _ close: Int) -> Bool {
        guard let space = text[(open + 1)..<close].firstIndex(of: UInt8(ascii: " ")) else { return false }
        return text[space..<close].starts(with: " in _".utf8)
    }

    /// Skips a type.
    mutating func skipType(until stop: Stop) {
        index = typeEnd(from: index, until: stop)
    }

    /// Where the type starting at `start` ends: at the end of the text, or at the stop's word
    /// outside brackets.
    func typeEnd(from start: Int, until stop: Stop) -> Int {
        var position = start
        var depth = 0
        var probe = self
        while position < text.count {
            let byte = text[position]
            if byte == UInt8(ascii: "(") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "<") {
                depth += 1
            } else if byte == UInt8(ascii: ")") || byte == UInt8(ascii: "]")
                || (byte == UInt8(ascii: ">") && (position == 0 || text[position - 1] != UInt8(ascii: "-")))
            {
                depth -= 1
                if depth < 0 { return position }
            } else if byte == UInt8(ascii: " ") && depth == 0 {
                probe.index = position
                if probe.has(" with unmangled suffix ") { return position }
                switch stop {
                case .end: break
                case .inContext: if probe.has(" in ") { return position }
                case .to: if probe.has(" to ") { return position }
                case .andConformance: if probe.has(" and conformance ") { return position }
                case .colon: if probe.has(" : ") { return position }
                }
            }
            position += 1
        }
        return position
    }

    // MARK: Bytes

    /// The index after the bracket group opening at `start` (`<…>` may hold `->`).
    func groupEnd(from start: Int) -> Int {
        (matchingClose(from: start) ?? (text.count - 1)) + 1
    }

    func matchingClose(from start: Int) -> Int? {
        var depth = 0
        var position = start
        while position < text.count {
            let byte = text[position]
            if byte == UInt8(ascii: "(") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "<") {
                depth += 1
            } else if byte == UInt8(ascii: ")") || byte == UInt8(ascii: "]")
                || (byte == UInt8(ascii: ">") && (position == 0 || text[position - 1] != UInt8(ascii: "-")))
            {
                depth -= 1
                if depth == 0 { return position }
            }
            position += 1
        }
        return nil
    }

    func byte(at position: Int) -> UInt8 {
        position < text.count ? text[position] : 0
    }

    func has(_ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { has($0) }
    }

    func has(_ literal: some Collection<UInt8>) -> Bool {
        guard index + literal.count <= text.count else { return false }
        return text[index..<(index + literal.count)].elementsEqual(literal)
    }

    mutating func emit(_ literal: StaticString) {
        literal.withUTF8Buffer { emit($0) }
    }

    mutating func emit(_ literal: some Collection<UInt8>) {
        output.append(contentsOf: literal)
    }

    /// Copies `literal`, which is at `index`.
    mutating func take(_ literal: StaticString) {
        literal.withUTF8Buffer { take($0) }
    }

    mutating func take(_ literal: some Collection<UInt8>) {
        index += literal.count
        output.append(contentsOf: literal)
    }

    mutating func skip(_ literal: StaticString) {
        literal.withUTF8Buffer { if has($0) { index += $0.count } }
    }

    mutating func copyByte() {
        output.append(text[index])
        index += 1
    }
}

private func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
}

/// Letters, digits, `_`, `$` and every byte of a non-ASCII character.
private func isIdentifierByte(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || isDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || byte >= 0x80
}

private func isOperatorByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "!"),
        UInt8(ascii: "*"), UInt8(ascii: "%"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"),
        UInt8(ascii: "|"), UInt8(ascii: "^"), UInt8(ascii: "~"), UInt8(ascii: "?"), UInt8(ascii: "."):
        return true
    default:
        return false
    }
}
