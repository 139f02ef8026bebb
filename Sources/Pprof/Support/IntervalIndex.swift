extension RandomAccessCollection where Index == Int {
    /// Binary search: the first index whose element satisfies `isInSuffix`, for a collection in
    /// which the elements that satisfy it form a suffix; `endIndex` when none does.
    func partitionIndex(where isInSuffix: (Element) -> Bool) -> Int {
        var low = startIndex
        var high = endIndex
        while low < high {
            let mid = low + (high - low) / 2
            if isInSuffix(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

/// Address ranges with a value each, for finding the ranges that hold an address: sorted by
/// start, each entry also records the highest end so far, so a lookup is a binary search plus a
/// walk back that stops as soon as no earlier range can reach the address — correct even when
/// ranges nest or overlap (symbols, DWARF units and functions sometimes do).
struct IntervalIndex<Value> {
    private var entries: [(range: Range<UInt64>, value: Value, maximumEnd: UInt64)] = []

    init(_ items: some Sequence<(range: Range<UInt64>, value: Value)>) {
        entries = items.filter { !$0.range.isEmpty }.map { ($0.range, $0.value, 0) }
        entries.sort { $0.range.lowerBound < $1.range.lowerBound }
        var maximumEnd: UInt64 = 0
        for index in entries.indices {
            maximumEnd = max(maximumEnd, entries[index].range.upperBound)
            entries[index].maximumEnd = maximumEnd
        }
    }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The values of the ranges that hold `address`, the latest-starting (innermost) first.
    func values(containing address: UInt64) -> [Value] {
        var result: [Value] = []
        forEachIndex(containing: address) { index in
            result.append(entries[index].value)
            return true
        }
        return result
    }

    /// The value of the latest-starting range that holds `address`.
    func first(containing address: UInt64) -> Value? {
        entry(containing: address)?.value
    }

    /// The range and value of the latest-starting range that holds `address`.
    func entry(containing address: UInt64) -> (range: Range<UInt64>, value: Value)? {
        var found: Int?
        forEachIndex(containing: address) { index in
            found = index
            return false
        }
        return found.map { (entries[$0].range, entries[$0].value) }
    }

    /// Calls `body` with each entry holding `address`, latest start first, until it returns false.
    private func forEachIndex(containing address: UInt64, _ body: (Int) -> Bool) {
        var index = entries.partitionIndex { $0.range.lowerBound > address } - 1
        while index >= 0 && entries[index].maximumEnd > address {
            if entries[index].range.contains(address), !body(index) { return }
            index -= 1
        }
    }

    /// Every range and value, by start address.
    var all: [(range: Range<UInt64>, value: Value)] { entries.map { ($0.range, $0.value) } }
}

extension IntervalIndex: Sendable where Value: Sendable {}
