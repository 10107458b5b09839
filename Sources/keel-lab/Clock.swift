import Glibc

/// Monotonic wall time for benchmarks.
struct Stopwatch {
    private let start = Stopwatch.now()
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    var elapsed: Double { Stopwatch.now() - start }

    static func measure(_ body: () throws -> Void) rethrows -> Double {
        let w = Stopwatch()
        try body()
        return w.elapsed
    }
}
