import NetAddress
import Netlink
@testable import ServiceProxy
import Testing

@Suite struct IPVSDiffTests {
    let desired = IPVSDesiredState(ipvsFixture)
    var ownership: IPVSOwnership {
        IPVSOwnership(addresses: Set(desired.dummyAddresses), nodePortAddresses: Set(desired.nodePortAddresses))
    }

    func state(_ change: (inout ProxyState) -> Void) -> IPVSDesiredState {
        var s = ipvsFixture
        change(&s)
        return IPVSDesiredState(ProxyState(services: s.services, nodePortAddresses: s.nodePortAddresses, clusterCIDR: s.clusterCIDR))
    }
    func index(_ name: ServicePortName) -> Int { ipvsFixture.services.firstIndex { $0.name == name }! }

    @Test func fromNothingEverythingIsAddedAndTheResultIsTheDesiredTable() {
        let ops = ipvsOperations(from: [:], to: desired.services, ownership: ownership)
        let counts = IPVSChangeCounts(ops)
        #expect(counts.servicesAdded == desired.services.count)
        #expect(counts.destinationsAdded == desired.services.values.reduce(0) { $0 + $1.destinations.count })
        #expect([IPVSServiceKey: IPVSVirtualService]().applying(ops) == desired.services)
    }

    @Test func identicalMeansNoOperations() {
        #expect(ipvsOperations(from: desired.services, to: desired.services, ownership: ownership).isEmpty)
        // The kernel reports `.hashed` on every service, and any timeout without persistence: not a change.
        var kernel = desired.services
        for key in kernel.keys where !kernel[key]!.service.flags.contains(.persistent) {
            kernel[key]!.service.flags.insert(.hashed)
            kernel[key]!.service.timeout = 300
        }
        #expect(ipvsOperations(from: kernel, to: desired.services, ownership: ownership).isEmpty)
    }

    @Test func oneUDPEndpointChangeIsExactlyItsDestinationOperations() {
        let changed = state { $0.services[index(ipvsDNS)].internalBackends = [Backend(ip("10.244.1.10"), 5353)] }
        let ops = ipvsOperations(from: desired.services, to: changed.services, ownership: ownership)
        // UDP: deleted at once (no connection to drain; expire_nodest_conn moves its flows).
        #expect(ops == [.addDestination(udp("10.96.0.53", 53), dest("10.244.1.10", 5353)),
                        .deleteDestination(udp("10.96.0.53", 53), address: ip("10.244.1.9"), port: 5353)])
    }

    @Test func aLeavingTCPDestinationDrainsAtWeightZeroThenGoes() {
        let changed = state { s in
            s.services[index(ipvsLocal)].internalBackends = [Backend(ip("10.244.1.5"), 80)]
        }
        let key = tcp("10.96.0.77", 80)
        let ops = ipvsOperations(from: desired.services, to: changed.services, ownership: ownership)
        #expect(ops == [.updateDestination(key, dest("10.244.2.7", 80, weight: 0))])
        // Already at weight 0 and not removable yet: nothing to do.
        let draining = desired.services.applying(ops)
        #expect(ipvsOperations(from: draining, to: changed.services, ownership: ownership).isEmpty)
        // Idle or drained long enough: the caller says so, and it goes.
        let id = IPVSDestinationID(service: key, address: ip("10.244.2.7"), port: 80)
        #expect(ipvsOperations(from: draining, to: changed.services, ownership: ownership, removable: [id])
            == [.deleteDestination(key, address: ip("10.244.2.7"), port: 80)])
        // Back before it went: weight 1 again.
        #expect(ipvsOperations(from: draining, to: desired.services, ownership: ownership) == [.updateDestination(key, dest("10.244.2.7", 80))])
    }

    @Test func aRemovedServiceDeletesItsVirtualServicesOnly() {
        let changed = state { $0.services.remove(at: index(ipvsEmpty)) }
        let ops = ipvsOperations(from: desired.services, to: changed.services, ownership: ownership)
        #expect(ops == [.deleteService(tcp("10.0.0.5", 30099)), .deleteService(tcp("10.96.0.99", 80)),
                        .deleteService(tcp("192.168.50.11", 30099))])
    }

    @Test func aSchedulerChangeUpdatesServicesNotDestinations() {
        let wrr = IPVSDesiredState(ipvsFixture, scheduler: IPVSScheduler(rawValue: "wrr")!)
        let ops = ipvsOperations(from: desired.services, to: wrr.services, ownership: ownership)
        #expect(ops.count == desired.services.count)
        #expect(ops.allSatisfy { if case .updateService(let s) = $0 { s.scheduler == "wrr" } else { false } })
    }

    @Test func servicesKeelDoesNotOwnAreNeverTouched() {
        var kernel = desired.services
        let strangers = [tcp("10.1.2.3", 80), tcp("192.168.50.11", 22), tcp("127.0.0.1", 30080)]   // keepalived's, an admin's
        for key in strangers { kernel[key] = IPVSVirtualService(service: IPVSService(key: key), destinations: [dest("10.9.9.9", 80)]) }
        // Keel's leftovers: a node port of a deleted service, a service address still on keel-ipvs0.
        kernel[tcp("192.168.50.11", 30555)] = IPVSVirtualService(service: IPVSService(key: tcp("192.168.50.11", 30555)))
        kernel[tcp("10.96.0.200", 80)] = IPVSVirtualService(service: IPVSService(key: tcp("10.96.0.200", 80)))
        var owned = ownership
        owned.addresses.insert(ip("10.96.0.200"))
        let ops = ipvsOperations(from: kernel, to: desired.services, ownership: owned)
        #expect(ops == [.deleteService(tcp("10.96.0.200", 80)), .deleteService(tcp("192.168.50.11", 30555))])
        #expect(owned.owns(tcp("192.168.50.11", 30555)) && !owned.owns(tcp("192.168.50.11", 22)) && !owned.owns(tcp("10.1.2.3", 80)))
    }

    @Test func anAffinityChangeUpdatesTheService() {
        let changed = state { $0.services[index(ipvsDNS)].affinityTimeout = 60 }
        let ops = ipvsOperations(from: desired.services, to: changed.services, ownership: ownership)
        #expect(ops.count == 1)
        guard case .updateService(let s)? = ops.first else { Issue.record("not an update: \(ops)"); return }
        #expect(s.key == udp("10.96.0.53", 53) && s.timeout == 60 && s.flags == .persistent)
    }
}
