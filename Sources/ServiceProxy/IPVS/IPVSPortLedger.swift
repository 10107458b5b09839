import NFTables
import NetAddress
import Netlink

/// What one service port contributes to the IPVS data plane, as values. Pure.
struct IPVSPortContribution: Sendable {
    var state: ServicePortState
    /// Its virtual services by key, the first claim of a key within the port counting
    /// (`IPVSDesiredState.claims`); another port sorting first may hold some of them.
    var claims: [IPVSServiceKey: IPVSVirtualService]
    var addresses: Set<IPAddress>
    /// Its elements of the `ip keel-ipvs` sets (`IPVSRuleset.elements(of:into:)`).
    var elements: [String: Set<SetElement>]

    init(_ svc: ServicePortState, nodePortAddresses: [IPAddress], scheduler: IPVSScheduler) {
        state = svc
        claims = [:]
        for (key, virtual) in IPVSDesiredState.claims(of: svc, nodePortAddresses: nodePortAddresses, scheduler: scheduler) where claims[key] == nil {
            claims[key] = virtual
        }
        addresses = IPVSDesiredState.addresses(of: svc)
        elements = [:]
        IPVSRuleset.elements(of: svc, into: &elements)
    }
}

/// The IPVS data plane's per-service-port account of what it applied: each port's contribution,
/// who claims each virtual service key, and use counts of the dummy addresses and set elements
/// that several ports share. With it, a sync of a few changed ports costs what they changed.
///
/// It agrees with the whole-state functions: `desired(_:)` of every key is `IPVSDesiredState`'s
/// service (the claimant whose name sorts first holds a contested key), the addresses in use are its
/// `dummyAddresses`, and the elements in use are `IPVSRuleset.ruleset`'s (as a union).
struct IPVSPortLedger: Sendable {
    let nodePortAddresses: [IPAddress]
    let scheduler: IPVSScheduler
    private(set) var ports: [ServicePortName: IPVSPortContribution] = [:]
    /// Claimants of each key, sorted: the first one holds it.
    private var claimants: [IPVSServiceKey: [ServicePortName]] = [:]
    /// Keys with more than one claimant.
    private var contested: Set<IPVSServiceKey> = []
    private var addressUse: [IPAddress: Int] = [:]
    private var elementUse: [String: [SetElement: Int]] = [:]

    /// What replacing some ports' contributions changes.
    struct Change: Sendable {
        /// Keys whose desired virtual service may differ (claimed before or after by a replaced port).
        var keys: Set<IPVSServiceKey> = []
        var addressesAdded: Set<IPAddress> = []
        var addressesRemoved: Set<IPAddress> = []
        /// Elements that came into use, and that went out of use, per set.
        var elementsAdded: [String: Set<SetElement>] = [:]
        var elementsRemoved: [String: Set<SetElement>] = [:]
    }

    /// The ledger of the whole `state`.
    init(_ state: ProxyState, scheduler: IPVSScheduler) {
        nodePortAddresses = state.nodePortAddresses.filter(\.isIPv4)
        self.scheduler = scheduler
        for svc in state.services {   // sorted by name: each key's claimants come in order
            let c = IPVSPortContribution(svc, nodePortAddresses: nodePortAddresses, scheduler: scheduler)
            ports[svc.name] = c
            for key in c.claims.keys { claim(key, by: svc.name) }
            for a in c.addresses { addressUse[a, default: 0] += 1 }
            for (set, list) in c.elements { for e in list { elementUse[set, default: [:]][e, default: 0] += 1 } }
        }
    }

    /// The port holding `key`.
    func holder(of key: IPVSServiceKey) -> ServicePortName? { claimants[key]?.first }

    /// Every key some port claims.
    var keys: Dictionary<IPVSServiceKey, [ServicePortName]>.Keys { claimants.keys }

    /// The elements in use, per set: the service ports' part of `IPVSRuleset.ruleset`.
    var elements: [String: Set<SetElement>] { elementUse.mapValues { Set($0.keys) } }

    /// The virtual service `key` should be: its holder's claim; nil when no port claims it.
    func desired(_ key: IPVSServiceKey) -> IPVSVirtualService? {
        guard let holder = claimants[key]?.first else { return nil }
        return ports[holder]?.claims[key]
    }

    /// Addresses some port puts on the dummy interface.
    var addresses: Set<IPAddress> { Set(addressUse.keys) }

    /// Every contested key with the ports that lose it (the order differs from `IPVSDesiredState`'s).
    var conflicts: [IPVSKeyConflict] {
        contested.sorted().flatMap { key in
            let list = claimants[key]!
            return list.dropFirst().map { IPVSKeyConflict(key: key, kept: list[0], dropped: $0) }
        }
    }

    /// Replaces the contributions of the named ports with those of their new states (nil: the port
    /// is gone), and says what that changed.
    mutating func replace(_ updates: [(ServicePortName, ServicePortState?)]) -> Change {
        var change = Change()
        var addressDelta: [IPAddress: Int] = [:]
        var elementDelta: [String: [SetElement: Int]] = [:]
        for (name, state) in updates {
            let old = ports[name]
            let new = state.map { IPVSPortContribution($0, nodePortAddresses: nodePortAddresses, scheduler: scheduler) }
            ports[name] = new
            let oldClaims = old?.claims ?? [:], newClaims = new?.claims ?? [:]
            for key in oldClaims.keys where newClaims[key] == nil { unclaim(key, by: name) }
            for key in newClaims.keys where oldClaims[key] == nil { claim(key, by: name) }
            change.keys.formUnion(oldClaims.keys)
            change.keys.formUnion(newClaims.keys)
            for a in old?.addresses ?? [] { addressDelta[a, default: 0] -= 1 }
            for a in new?.addresses ?? [] { addressDelta[a, default: 0] += 1 }
            for (set, list) in old?.elements ?? [:] { for e in list { elementDelta[set, default: [:]][e, default: 0] -= 1 } }
            for (set, list) in new?.elements ?? [:] { for e in list { elementDelta[set, default: [:]][e, default: 0] += 1 } }
        }
        for (address, delta) in addressDelta where delta != 0 {
            let before = addressUse[address] ?? 0
            let after = before + delta
            addressUse[address] = after == 0 ? nil : after
            if before == 0 { change.addressesAdded.insert(address) } else if after == 0 { change.addressesRemoved.insert(address) }
        }
        for (set, deltas) in elementDelta {
            for (element, delta) in deltas where delta != 0 {
                let before = elementUse[set]?[element] ?? 0
                let after = before + delta
                elementUse[set, default: [:]][element] = after == 0 ? nil : after
                if before == 0 {
                    change.elementsAdded[set, default: []].insert(element)
                } else if after == 0 {
                    change.elementsRemoved[set, default: []].insert(element)
                }
            }
        }
        return change
    }

    private mutating func claim(_ key: IPVSServiceKey, by name: ServicePortName) {
        claimants[key, default: []].append(name)
        guard claimants[key]!.count > 1 else { return }
        contested.insert(key)
        claimants[key]!.sort()
    }

    private mutating func unclaim(_ key: IPVSServiceKey, by name: ServicePortName) {
        guard var list = claimants[key] else { return }
        list.removeAll { $0 == name }
        claimants[key] = list.isEmpty ? nil : list
        if list.count <= 1 { contested.remove(key) }
    }
}
