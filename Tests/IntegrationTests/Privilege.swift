import Glibc

/// Whether the privileged (network-namespace) tests run. They need root (CAP_NET_ADMIN and
/// CAP_SYS_ADMIN). With KEEL_REQUIRE_PRIVILEGED=1 — set by scripts/test when it runs as root, as in
/// CI — they always run, so a missing privilege fails them instead of skipping them silently.
enum Privilege {
    static var canRunNetnsTests: Bool {
        if let v = getenv("KEEL_REQUIRE_PRIVILEGED"), String(cString: v) == "1" { return true }
        return geteuid() == 0
    }
}
