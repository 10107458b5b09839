import Glibc

/// Runs a throwing closure on its own thread; `wait()` joins it and returns its error, if any.
/// For overlapping a child process (the IPAM plugin) with kernel work in the same DEL.
final class InBackground: @unchecked Sendable {
    private var thread = pthread_t()
    private var error: (any Error)?
    private let body: () throws -> Void
    private var joined = false

    init(_ body: @escaping () throws -> Void) {
        self.body = body
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let task = Unmanaged<InBackground>.fromOpaque(raw!).takeRetainedValue()
            do { try task.body() } catch { task.error = error }
            return nil
        }, me)
        if rc != 0 {
            Unmanaged<InBackground>.fromOpaque(me).release()
            joined = true
            do { try body() } catch { self.error = error }   // no thread: run it here instead
        }
    }

    func wait() -> (any Error)? {
        if !joined { pthread_join(thread, nil); joined = true }
        return error
    }

    deinit { _ = wait() }
}
