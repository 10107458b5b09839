/// Exponential backoff with jitter, as client-go's reflector uses between failed LIST/WATCH attempts:
/// each failure doubles the delay up to `maximum`; a success resets it. Jitter spreads reconnects of
/// many nodes after an API server restart.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    /// The fraction of the delay added at random: 0.5 gives a delay in [d, 1.5·d].
    public var jitter: Double
    private var current: Duration?

    public init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30), jitter: Double = 0.5) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay to wait now; the next one is twice as long.
    public mutating func next<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let base = min(current ?? initial, maximum)
        current = min(base * 2, maximum)
        return base + base * Double.random(in: 0...jitter, using: &generator)
    }
    public mutating func next() -> Duration {
        var g = SystemRandomNumberGenerator()
        return next(using: &g)
    }
    public mutating func reset() { current = nil }
}
