import CPprof
import Foundation
import Testing

@Suite struct TableTests {
    @Test func stackTableDeduplicatesAndReturnsFrames() throws {
        let table = try #require(pp_stack_table_create(100, 1000))
        let a: [UInt] = [0x1000, 0x2000, 0x3000]
        let b: [UInt] = [0x1000, 0x2000]
        let idA = a.withUnsafeBufferPointer { pp_stack_table_intern(table, $0.baseAddress, Int32($0.count)) }
        let idB = b.withUnsafeBufferPointer { pp_stack_table_intern(table, $0.baseAddress, Int32($0.count)) }
        let idA2 = a.withUnsafeBufferPointer { pp_stack_table_intern(table, $0.baseAddress, Int32($0.count)) }
        #expect(idA != 0 && idB != 0 && idA != idB)
        #expect(idA == idA2)
        #expect(pp_stack_table_count(table) == 2)
        var frames: UnsafePointer<UInt>?
        let count = pp_stack_table_get(table, idA, &frames)
        #expect(Array(UnsafeBufferPointer(start: frames, count: Int(count))) == a)
    }

    @Test func stackTableCountsDropsWhenFull() throws {
        let table = try #require(pp_stack_table_create(4, 100))
        var ids = Set<UInt32>()
        for i in 0..<10 {
            let stack: [UInt] = [UInt(0x1000 + i)]
            ids.insert(stack.withUnsafeBufferPointer { pp_stack_table_intern(table, $0.baseAddress, 1) })
        }
        #expect(ids.subtracting([0]).count == 4)
        #expect(pp_stack_table_dropped(table) == 6)
    }

    @Test func concurrentInternAgreesOnIds() throws {
        let table = try #require(pp_stack_table_create(1000, 10000))
        let results = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 500)
        defer { results.deallocate() }
        // Raw pointers cross threads here by design: each worker writes its own slice.
        nonisolated(unsafe) let shared = (table, results)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let (table, results) = shared
            for i in 0..<500 {
                let stack: [UInt] = [UInt(0x1000 + i % 250), 0x42, UInt(i % 250)]
                results[worker * 500 + i] = stack.withUnsafeBufferPointer {
                    pp_stack_table_intern(table, $0.baseAddress, 3)
                }
            }
        }
        // Every id resolves to the stack that was interned; a writer preempted mid-insert may rarely
        // give a stack a second id, so ids are compared by their frames.
        for worker in 0..<8 {
            for i in 0..<500 {
                let id = results[worker * 500 + i]
                var frames: UnsafePointer<UInt>?
                let count = pp_stack_table_get(table, id, &frames)
                #expect(
                    Array(UnsafeBufferPointer(start: frames, count: Int(count))) == [
                        UInt(0x1000 + i % 250), 0x42, UInt(i % 250),
                    ]
                )
            }
        }
        #expect((250...260).contains(pp_stack_table_count(table)))
    }

    @Test func bucketTableCountsPerKey() throws {
        let table = try #require(pp_bucket_table_create(16))
        for key in 1...3 {
            for _ in 0..<key {
                let counters = try #require(pp_bucket_table_counters(table, UInt64(key)))
                counters[0] += 1
                counters[1] += 10
            }
        }
        final class Seen { var rows: [UInt64: [Int64]] = [:] }
        let seen = Seen()
        pp_bucket_table_visit(
            table,
            { context, key, counters in
                let seen = Unmanaged<Seen>.fromOpaque(context!).takeUnretainedValue()
                seen.rows[key] = Array(UnsafeBufferPointer(start: counters, count: 2))
            },
            Unmanaged.passUnretained(seen).toOpaque()
        )
        #expect(seen.rows == [1: [1, 10], 2: [2, 20], 3: [3, 30]])
    }
}
