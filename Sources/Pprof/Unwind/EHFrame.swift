/// The registers unwind information is about, by DWARF register number, for one machine.
struct UnwindArchitecture: Sendable, Equatable {
    var elfMachine: UInt16
    var stackPointer: UInt64
    var framePointer: UInt64
    var returnAddress: UInt64
    /// On aarch64 a function that has not saved the link register still has its return address in
    /// it; x86_64 CIEs always say where `call` left it.
    var returnAddressStaysInRegister: Bool

    static let x86_64 = UnwindArchitecture(
        elfMachine: ELFFile.machineX86_64,
        stackPointer: 7,
        framePointer: 6,
        returnAddress: 16,
        returnAddressStaysInRegister: false
    )
    static let aarch64 = UnwindArchitecture(
        elfMachine: ELFFile.machineAArch64,
        stackPointer: 31,
        framePointer: 29,
        returnAddress: 30,
        returnAddressStaysInRegister: true
    )

    static var host: UnwindArchitecture {
        #if arch(x86_64)
            return .x86_64
        #else
            return .aarch64
        #endif
    }
}

/// The unwind rule in force at one address, reduced to what the walker needs: how to find the
/// canonical frame address (CFA), where the return address is and where the caller's frame pointer
/// is kept. Rules for other registers are parsed and ignored.
struct CFIState: Equatable {
    enum CFA: Equatable {
        case register(UInt64, offset: Int64)
        /// A DWARF expression or anything else the walker does not model.
        case unsupported
    }

    enum Rule: Equatable {
        /// No rule given: the register keeps its value (or, for the return address, the
        /// architecture's default applies).
        case unspecified
        case undefined
        case sameValue
        /// Saved at CFA + offset.
        case offset(Int64)
        case unsupported
    }

    var cfa: CFA = .unsupported
    var framePointer: Rule = .unspecified
    var returnAddress: Rule = .unspecified
}

/// One function's unwind information from `.eh_frame`: its address range and the rule in force
/// from each address on (addresses are the file's virtual addresses).
struct CFIFunction {
    var begin: UInt64
    var end: UInt64
    /// A signal trampoline (CIE augmentation `S`).
    var isSignalFrame: Bool
    var rows: [(address: UInt64, state: CFIState)]
}

/// A reader of `.eh_frame` (the LSB's variant of DWARF `.debug_frame`): CIEs, FDEs and the call
/// frame instructions that build each function's rows. Everything is bounds-checked through
/// `ByteReader`; a malformed entry throws and the caller skips the image.
struct EHFrame {
    let bytes: UnsafeRawBufferPointer
    /// The virtual address of `bytes[0]`, for PC-relative pointers.
    let address: UInt64
    let architecture: UnwindArchitecture

    struct Malformed: Error, CustomStringConvertible {
        var reason: String
        var description: String { "malformed .eh_frame: \(reason)" }
    }

    private struct CIE {
        var codeAlignment: UInt64
        var dataAlignment: Int64
        var returnAddressRegister: UInt64
        var pointerEncoding: UInt8 = 0
        var hasAugmentationData = false
        var isSignalFrame = false
        var initialState = CFIState()
    }

    /// Calls `body` with every function described, in file order. (The function's `rows` buffer is
    /// reused for the next one: copy what must outlive the call.)
    func forEachFunction(_ body: (CFIFunction) -> Void) throws {
        var cies: [Int: CIE] = [:]
        var function = CFIFunction(begin: 0, end: 0, isSignalFrame: false, rows: [])
        var offset = 0
        while offset + 4 <= bytes.count {
            var reader = ByteReader(bytes)
            reader.offset = offset
            var length = UInt64(try reader.u32())
            if length == 0 { break }  // terminator
            if length == 0xffff_ffff { length = try reader.u64() }
            let contentStart = reader.offset
            guard length <= UInt64(bytes.count - contentStart) else { throw Malformed(reason: "entry past the end") }
            let end = contentStart + Int(length)
            let idOffset = reader.offset
            let id = try reader.u32()
            if id != 0 {
                let cieOffset = idOffset - Int(id)
                let cie: CIE
                if let known = cies[cieOffset] {
                    cie = known
                } else {
                    cie = try parseCIE(at: cieOffset)
                    cies[cieOffset] = cie
                }
                if try parseFDE(reader: &reader, end: end, cie: cie, into: &function) { body(function) }
            }
            offset = end
        }
    }

    private func parseCIE(at offset: Int) throws -> CIE {
        guard offset >= 0, offset < bytes.count else { throw Malformed(reason: "CIE pointer out of range") }
        var reader = ByteReader(bytes)
        reader.offset = offset
        var length = UInt64(try reader.u32())
        if length == 0xffff_ffff { length = try reader.u64() }
        let contentStart = reader.offset
        guard length >= 4, length <= UInt64(bytes.count - contentStart) else {
            throw Malformed(reason: "CIE past the end")
        }
        let end = contentStart + Int(length)
        guard try reader.u32() == 0 else { throw Malformed(reason: "FDE where a CIE was expected") }
        let version = try reader.u8()
        guard version == 1 || version == 3 || version == 4 else { throw Malformed(reason: "CIE version \(version)") }
        let augmentation = Array(try reader.cString().utf8)
        if version == 4 {
            _ = try reader.u8()  // address size
            _ = try reader.u8()  // segment selector size
        }
        if augmentation.starts(with: Array("eh".utf8)) { _ = try reader.u64() }
        var cie = CIE(
            codeAlignment: try reader.uleb128(),
            dataAlignment: try reader.sleb128(),
            returnAddressRegister: version == 1 ? UInt64(try reader.u8()) : try reader.uleb128()
        )
        if augmentation.first == UInt8(ascii: "z") {
            cie.hasAugmentationData = true
            let dataLength = try reader.uleb128()
            guard dataLength <= UInt64(reader.remaining) else { throw Malformed(reason: "CIE augmentation length") }
            let dataEnd = reader.offset + Int(dataLength)
            for character in augmentation.dropFirst() {
                switch character {
                case UInt8(ascii: "R"): cie.pointerEncoding = try reader.u8()
                case UInt8(ascii: "L"): _ = try reader.u8()
                case UInt8(ascii: "P"):
                    let encoding = try reader.u8()
                    _ = try readPointer(&reader, encoding: encoding)
                case UInt8(ascii: "S"): cie.isSignalFrame = true
                default: break  // "B" (arm64 B key), "G" (MTE): no data
                }
            }
            reader.offset = dataEnd
        }
        guard reader.offset <= end else { throw Malformed(reason: "CIE header overruns it") }
        var ignored: [(address: UInt64, state: CFIState)] = []
        cie.initialState = try run(
            instructions: reader.offset..<end,
            cie: cie,
            initial: CFIState(),
            begin: 0,
            end: 0,
            rows: &ignored
        )
        return cie
    }

    /// Parses the FDE at `reader` into `function`; false for a discarded function.
    private func parseFDE(reader: inout ByteReader, end: Int, cie: CIE, into function: inout CFIFunction) throws -> Bool
    {
        let begin = try readPointer(&reader, encoding: cie.pointerEncoding)
        let range = try readPointer(&reader, encoding: cie.pointerEncoding & 0x0f)
        if cie.hasAugmentationData {
            let dataLength = try reader.uleb128()
            guard dataLength <= UInt64(end - reader.offset) else { throw Malformed(reason: "FDE augmentation length") }
            reader.offset += Int(dataLength)
        }
        guard reader.offset <= end else { throw Malformed(reason: "FDE header overruns it") }
        // Discarded functions (garbage-collected sections) keep FDEs with a zero start or range.
        guard begin != 0, range != 0, begin <= UInt64.max - range else { return false }
        function.begin = begin
        function.end = begin + range
        function.isSignalFrame = cie.isSignalFrame
        function.rows.removeAll(keepingCapacity: true)
        _ = try run(
            instructions: reader.offset..<end,
            cie: cie,
            initial: cie.initialState,
            begin: begin,
            end: begin + range,
            rows: &function.rows
        )
        return true
    }

    /// Runs call frame instructions from `initial` for the function [begin, end), appending to
    /// `rows` the state in force from each location on. Returns the final state.
    private func run(
        instructions: Range<Int>,
        cie: CIE,
        initial: CFIState,
        begin: UInt64,
        end: UInt64,
        rows: inout [(address: UInt64, state: CFIState)]
    ) throws -> CFIState {
        let architecture = self.architecture
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[0..<instructions.upperBound]))
        reader.offset = instructions.lowerBound
        var state = initial
        var location = begin
        var remembered: [CFIState] = []

        // The state so far holds from `location` up to `target`.
        func moveTo(_ target: UInt64) {
            guard target > location else { return }
            if location < end { rows.append((location, state)) }
            location = target
        }

        func setRule(_ register: UInt64, _ rule: CFIState.Rule) {
            if register == architecture.framePointer { state.framePointer = rule }
            if register == cie.returnAddressRegister { state.returnAddress = rule }
        }
        func restore(_ register: UInt64) {
            if register == architecture.framePointer { state.framePointer = initial.framePointer }
            if register == cie.returnAddressRegister { state.returnAddress = initial.returnAddress }
        }
        func advance(_ delta: UInt64) {
            let (next, overflow) = location.addingReportingOverflow(delta &* cie.codeAlignment)
            moveTo(overflow ? UInt64.max : next)
        }
        func setCFAOffset(_ offset: Int64) {
            if case .register(let register, _) = state.cfa { state.cfa = .register(register, offset: offset) }
        }
        func setCFARegister(_ register: UInt64) {
            if case .register(_, let offset) = state.cfa {
                state.cfa = .register(register, offset: offset)
            } else {
                state.cfa = .unsupported
            }
        }
        func skipBlock() throws {
            let length = try reader.uleb128()
            guard length <= UInt64(reader.remaining) else { throw Malformed(reason: "expression past the end") }
            reader.offset += Int(length)
        }

        while !reader.isAtEnd {
            let opcode = try reader.u8()
            let operand = UInt64(opcode & 0x3f)
            switch opcode >> 6 {
            case 1:  // DW_CFA_advance_loc
                advance(operand)
                continue
            case 2:  // DW_CFA_offset
                setRule(operand, .offset(Int64(bitPattern: try reader.uleb128()) &* cie.dataAlignment))
                continue
            case 3:  // DW_CFA_restore
                restore(operand)
                continue
            default:
                break
            }
            switch opcode {
            case 0x00: break  // nop
            case 0x01:  // set_loc
                moveTo(try readPointer(&reader, encoding: cie.pointerEncoding))
            case 0x02: advance(UInt64(try reader.u8()))
            case 0x03: advance(UInt64(try reader.u16()))
            case 0x04: advance(UInt64(try reader.u32()))
            case 0x05:  // offset_extended
                let register = try reader.uleb128()
                setRule(register, .offset(Int64(bitPattern: try reader.uleb128()) &* cie.dataAlignment))
            case 0x06: restore(try reader.uleb128())
            case 0x07: setRule(try reader.uleb128(), .undefined)
            case 0x08: setRule(try reader.uleb128(), .sameValue)
            case 0x09:  // register
                let register = try reader.uleb128()
                _ = try reader.uleb128()
                setRule(register, .unsupported)
            case 0x0a: remembered.append(state)
            case 0x0b:
                // Restores the CFA rule too, as libgcc and libunwind do (compilers rely on it after
                // mid-function epilogues).
                guard let saved = remembered.popLast() else {
                    throw Malformed(reason: "restore_state without remember")
                }
                state = saved
            case 0x0c:  // def_cfa
                let register = try reader.uleb128()
                state.cfa = .register(register, offset: Int64(bitPattern: try reader.uleb128()))
            case 0x0d: setCFARegister(try reader.uleb128())
            case 0x0e: setCFAOffset(Int64(bitPattern: try reader.uleb128()))
            case 0x0f:  // def_cfa_expression
                try skipBlock()
                state.cfa = .unsupported
            case 0x10:  // expression
                let register = try reader.uleb128()
                try skipBlock()
                setRule(register, .unsupported)
            case 0x11:  // offset_extended_sf
                let register = try reader.uleb128()
                setRule(register, .offset(try reader.sleb128() &* cie.dataAlignment))
            case 0x12:  // def_cfa_sf
                let register = try reader.uleb128()
                state.cfa = .register(register, offset: try reader.sleb128() &* cie.dataAlignment)
            case 0x13: setCFAOffset(try reader.sleb128() &* cie.dataAlignment)
            case 0x14, 0x15:  // val_offset(_sf): the register's value is CFA + n, not saved
                let register = try reader.uleb128()
                _ = opcode == 0x14 ? Int64(bitPattern: try reader.uleb128()) : try reader.sleb128()
                setRule(register, .unsupported)
            case 0x16:  // val_expression
                let register = try reader.uleb128()
                try skipBlock()
                setRule(register, .unsupported)
            case 0x2d: break  // GNU_window_save / AARCH64_negate_ra_state: PAC is stripped anyway
            case 0x2e: _ = try reader.uleb128()  // GNU_args_size
            case 0x2f:  // GNU_negative_offset_extended
                let register = try reader.uleb128()
                setRule(register, .offset(-(Int64(bitPattern: try reader.uleb128()) &* cie.dataAlignment)))
            default:
                throw Malformed(reason: "call frame instruction 0x\(String(opcode, radix: 16))")
            }
        }
        if location < end { rows.append((location, state)) }
        return state
    }

    /// Reads a pointer in a `DW_EH_PE_*` encoding. Indirect pointers are returned as the address of
    /// the pointer (nothing here needs their target).
    func readPointer(_ reader: inout ByteReader, encoding: UInt8) throws -> UInt64 {
        if encoding == 0xff { return 0 }  // omit
        let fieldAddress = address &+ UInt64(reader.offset)
        var value: UInt64
        switch encoding & 0x0f {
        case 0x00, 0x04: value = try reader.u64()
        case 0x01: value = try reader.uleb128()
        case 0x02: value = UInt64(try reader.u16())
        case 0x03: value = UInt64(try reader.u32())
        case 0x09: value = UInt64(bitPattern: try reader.sleb128())
        case 0x0a: value = UInt64(bitPattern: Int64(try reader.i16()))
        case 0x0b: value = UInt64(bitPattern: Int64(try reader.i32()))
        case 0x0c: value = UInt64(bitPattern: try reader.i64())
        default: throw Malformed(reason: "pointer encoding 0x\(String(encoding, radix: 16))")
        }
        switch encoding & 0x70 {
        case 0x00: break
        case 0x10: value = value &+ fieldAddress
        default: throw Malformed(reason: "pointer application 0x\(String(encoding, radix: 16))")
        }
        return value
    }

    /// The virtual address of `.eh_frame` named by an `.eh_frame_hdr` at `headerAddress`.
    static func frameAddress(fromHeader header: UnsafeRawBufferPointer, headerAddress: UInt64) throws -> UInt64 {
        var reader = ByteReader(header)
        guard try reader.u8() == 1 else { throw Malformed(reason: ".eh_frame_hdr version") }
        let encoding = try reader.u8()
        _ = try reader.u8()  // FDE count encoding
        _ = try reader.u8()  // table encoding
        let parser = EHFrame(bytes: header, address: headerAddress, architecture: .host)
        return try parser.readPointer(&reader, encoding: encoding)
    }
}
