import NetAddress
import Netlink
@testable import Routes
import Testing

let nodes = [
    PeerNode(name: "node1", podCIDRs: [CIDR("10.244.0.0/24")!], nodeIPs: [IPAddress("192.168.50.11")!]),
    PeerNode(name: "node2", podCIDRs: [CIDR("10.244.1.0/24")!, CIDR("fd00:10:244:1::/64")!],
             nodeIPs: [IPAddress("192.168.50.12")!, IPAddress("fd00:50::12")!]),
    PeerNode(name: "node3", podCIDRs: [CIDR("10.244.2.0/24")!], nodeIPs: [IPAddress("192.168.50.13")!],
             vtepMAC: MACAddress("02:aa:bb:cc:dd:03")),
    PeerNode(name: "node4", podCIDRs: [], nodeIPs: [IPAddress("192.168.50.14")!]),
]

@Suite struct DesiredPeerStateTests {
    @Test func hostGatewayRoutesEveryPeerPodCIDRViaItsNodeIP() {
        let s = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .hostGW))
        #expect(s.routes == [
            Route(destination: CIDR("10.244.1.0/24")!, gateway: IPAddress("192.168.50.12"), proto: .keel),
            Route(destination: CIDR("fd00:10:244:1::/64")!, gateway: IPAddress("fd00:50::12"), proto: .keel),
            Route(destination: CIDR("10.244.2.0/24")!, gateway: IPAddress("192.168.50.13"), proto: .keel),
        ])
        #expect(s.fdb.isEmpty && s.neighbours.isEmpty)
        #expect(s.skipped == ["node4": "no pod CIDR"])
    }

    @Test func vxlanProgramsFDBNeighbourAndOnlinkRoutePerPeer() {
        let s = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .vxlan, vxlanIndex: 7, vni: 1))
        let derived = VTEP.mac(underlay: IPAddress("192.168.50.12")!, vni: 1)
        #expect(s.routes == [
            Route(destination: CIDR("10.244.1.0/24")!, gateway: IPAddress("10.244.1.0"), device: 7, onlink: true, proto: .keel),
            Route(destination: CIDR("10.244.2.0/24")!, gateway: IPAddress("10.244.2.0"), device: 7, onlink: true, proto: .keel),
        ])
        #expect(s.neighbours == [
            Neighbour(linkIndex: 7, address: IPAddress("10.244.1.0")!, mac: derived),
            Neighbour(linkIndex: 7, address: IPAddress("10.244.2.0")!, mac: MACAddress("02:aa:bb:cc:dd:03")),
        ])
        #expect(s.fdb == [
            FDBEntry(linkIndex: 7, mac: derived, destination: IPAddress("192.168.50.12")),
            FDBEntry(linkIndex: 7, mac: MACAddress("02:aa:bb:cc:dd:03")!, destination: IPAddress("192.168.50.13")),
        ])
        #expect(s.skipped["node2"]?.contains("IPv6") == true)
    }

    @Test func vxlanWithoutDeviceProgramsNothing() {
        let s = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .vxlan))
        #expect(s.routes.isEmpty && s.fdb.isEmpty)
    }

    @Test func derivedVTEPMACsAreUnicastLocalAndDistinct() {
        let a = VTEP.mac(underlay: IPAddress("192.168.50.12")!, vni: 1)
        let b = VTEP.mac(underlay: IPAddress("192.168.50.13")!, vni: 1)
        #expect(a != b)
        #expect(a.bytes[0] & 1 == 0 && a.bytes[0] & 2 == 2)
        #expect(a == VTEP.mac(underlay: IPAddress("192.168.50.12")!, vni: 1))
    }
}

@Suite struct PeerChangesTests {
    @Test func noChangeIsEmpty() {
        let s = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .vxlan, vxlanIndex: 7))
        #expect(peerChanges(current: s, desired: s).isEmpty)
    }

    @Test func removedPeerIsDeletedAndAddedPeerAdded() {
        let before = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .vxlan, vxlanIndex: 7))
        var fewer = nodes
        fewer.removeAll { $0.name == "node3" }
        fewer.append(PeerNode(name: "node5", podCIDRs: [CIDR("10.244.5.0/24")!], nodeIPs: [IPAddress("192.168.50.15")!]))
        let after = desiredPeerState(nodes: fewer, local: LocalNode(name: "node1", backend: .vxlan, vxlanIndex: 7))
        let c = peerChanges(current: before, desired: after)
        #expect(c.deleteRoutes.map(\.destination) == [CIDR("10.244.2.0/24")!])
        #expect(c.addRoutes.map(\.destination) == [CIDR("10.244.5.0/24")!])
        #expect(c.deleteFDB.map(\.destination) == [IPAddress("192.168.50.13")])
        #expect(c.addFDB.map(\.destination) == [IPAddress("192.168.50.15")])
        #expect(c.deleteNeighbours.count == 1 && c.addNeighbours.count == 1)
        #expect(c.count == 6)
    }

    @Test func movedPeerReplacesItsRoute() {
        let a = desiredPeerState(nodes: nodes, local: LocalNode(name: "node1", backend: .hostGW))
        var moved = nodes
        moved[2].nodeIPs = [IPAddress("192.168.50.99")!]
        let b = desiredPeerState(nodes: moved, local: LocalNode(name: "node1", backend: .hostGW))
        let c = peerChanges(current: a, desired: b)
        #expect(c.deleteRoutes.map(\.gateway) == [IPAddress("192.168.50.13")])
        #expect(c.addRoutes.map(\.gateway) == [IPAddress("192.168.50.99")])
    }
}
