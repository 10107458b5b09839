import Glibc

/// Runs a throwing closure on its own thread; `wait()` joins it and returns its result.
/// Used to overlap the IPAM plugin (a child process) with kernel work in the same ADD/DEL/CHECK.
final class InBackground<T>: @unchecked Sendable {
    private var thread = pthread_t()
    private var result: Result<T, any Error>?
    private var joined = false

    init(_ body: @escaping () throws -> T) {
        // A C thread entry cannot capture a generic context: hand it a non-generic box.
        let start = ThreadStart { [unowned self] in self.result = Result { try body() } }
        let box = Unmanaged.passRetained(start).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ThreadStart>.fromOpaque(box).release()
            joined = true
            result = Result { try body() }   // no thread to be had: run it here instead
        }
    }

    /// Joins the thread (once) and returns what the closure returned or threw.
    func wait() -> Result<T, any Error> {
        if !joined { pthread_join(thread, nil); joined = true }
        return result!
    }

    /// The closure's value, or its error rethrown.
    func value() throws -> T { try wait().get() }

    deinit { _ = wait() }
}

private final class ThreadStart {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
