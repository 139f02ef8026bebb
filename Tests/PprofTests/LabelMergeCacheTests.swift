import Testing

@testable import Pprof

extension LabelTests {
    /// The merge cache: a nested scope entered again with the same labels reuses the merged set
    /// (one allocation saved per entry), never returns a set merged from other labels, and lets
    /// every set go when the outer set goes.
    @Suite struct MergeCache {
        @Test func theSameNestedLabelsReuseTheMergedSet() {
            let outer: ProfileLabels = ["route": "/a", "tenant": "x"]
            let inner: ProfileLabels = ["route": "/b"]
            withProfileLabels(outer) {
                let first = withProfileLabels(inner) { ProfileLabels.current.storage }
                let again = withProfileLabels(inner) { ProfileLabels.current.storage }
                // A new set with the same pairs finds it too.
                let literal = withProfileLabels(["route": "/b"]) { ProfileLabels.current.storage }
                #expect(first != nil && first === again && first === literal)
                #expect(outer.merging(["route": "/b"]).storage === first)
                withProfileLabels(inner) { expectInForce([Pair("route", "/b"), Pair("tenant", "x")]) }
                expectInForce([Pair("route", "/a"), Pair("tenant", "x")])
            }
        }

        @Test func otherLabelsNeverHitAnotherMergedSet() {
            let outer: ProfileLabels = ["b": "2", "k": "outer"]
            // Each of these shares something with an earlier one (a key, a value, the number of
            // pairs, pairs already in the merged set), but merges to different labels.
            let inners: [(ProfileLabels, [Pair])] = [
                (["a": "1"], [Pair("a", "1"), Pair("b", "2"), Pair("k", "outer")]),
                (["b": "2"], [Pair("b", "2"), Pair("k", "outer")]),
                (["a": "2"], [Pair("a", "2"), Pair("b", "2"), Pair("k", "outer")]),
                (["k": "inner"], [Pair("b", "2"), Pair("k", "inner")]),
                (["a": "1", "k": "inner"], [Pair("a", "1"), Pair("b", "2"), Pair("k", "inner")]),
                (["a": "1", "b": "2"], [Pair("a", "1"), Pair("b", "2"), Pair("k", "outer")]),
                (["k": "caf\u{E9}"], [Pair("b", "2"), Pair("k", "caf\u{E9}")]),
                (["k": "cafe\u{301}"], [Pair("b", "2"), Pair("k", "cafe\u{301}")]),
            ]
            withProfileLabels(outer) {
                for _ in 0..<2 {
                    for (inner, expected) in inners {
                        withProfileLabels(inner) { expectInForce(expected) }
                        #expect(pairs(outer.merging(inner)) == expected)
                    }
                }
            }
        }

        /// Tasks entering nested scopes under one shared outer set at the same time, with more
        /// distinct inner labels than the cache holds: every scope sees exactly its merged labels.
        @Test func concurrentNestedScopesSeeTheirOwnLabels() async {
            let outer: ProfileLabels = ["route": "/shared", "tenant": "x"]
            let mismatches = await withTaskGroup(of: Int.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        await withProfileLabels(outer) {
                            var mismatches = 0
                            for iteration in 0..<2_000 {
                                let phase = "p\((task + iteration) % 5)"
                                let expected: ProfileLabels = ["route": "/shared", "tenant": "x", "phase": phase]
                                withProfileLabels(["phase": phase]) {
                                    if ProfileLabels.current != expected { mismatches += 1 }
                                }
                                if iteration % 100 == 0 { await Task.yield() }
                            }
                            return mismatches
                        }
                    }
                }
                return await group.reduce(0, +)
            }
            #expect(mismatches == 0)
        }

        @Test func mergedSetsGoWithTheOuterSet() {
            weak var outerStorage: LabelStorage?
            weak var merged: LabelStorage?
            weak var deeper: LabelStorage?
            do {
                let outer: ProfileLabels = ["request": String(Int.random(in: 0..<1_000_000))]
                outerStorage = outer.storage
                withProfileLabels(outer) {
                    withProfileLabels(["phase": "parse"]) {
                        merged = ProfileLabels.current.storage
                        withProfileLabels(["step": "1"]) { deeper = ProfileLabels.current.storage }
                    }
                    withProfileLabels(["phase": "parse"]) { #expect(ProfileLabels.current.storage === merged) }
                }
                #expect(merged != nil && deeper != nil)
                // Two sets that merge into each other: no cycle keeps them alive.
                let other: ProfileLabels = ["phase": "parse"]
                withProfileLabels(other) { withProfileLabels(outer) {} }
                withProfileLabels(outer) { withProfileLabels(other) {} }
            }
            #expect(outerStorage == nil && merged == nil && deeper == nil)
        }
    }
}
