import Cluster
import Foundation
import NetAddress
import Testing

@Suite struct ServiceTests {
    struct Decoded: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        var expected: Service
        var testDescription: String { name }
    }

    static func meta(_ name: String, _ namespace: String? = nil) -> ObjectMeta { ObjectMeta(name: name, namespace: namespace) }

    static let decoded: [Decoded] = [
        Decoded(name: "ClusterIP, multi-port, named and defaulted targetPorts",
                yaml: serviceYAML("web", namespace: "shop", spec: """
                selector: {app: web}
                clusterIP: 10.96.0.10
                ports:
                - {name: http, port: 80, targetPort: web}
                - {name: https, protocol: TCP, port: 443, targetPort: 8443}
                - {name: dns, protocol: UDP, port: 53}
                - {name: sig, protocol: SCTP, port: 9000, targetPort: "9001", appProtocol: sctp-sig}
                """),
                expected: Service(metadata: meta("web", "shop"), clusterIPs: [ip("10.96.0.10")], ports: [
                    ServicePort(name: "http", port: 80, targetPort: .name("web")),
                    ServicePort(name: "https", port: 443, targetPort: .number(8443)),
                    ServicePort(name: "dns", protocol: .udp, port: 53, targetPort: .number(53)),
                    ServicePort(name: "sig", protocol: .sctp, port: 9000, targetPort: .number(9001), appProtocol: "sctp-sig"),
                ], selector: ["app": "web"])),
        Decoded(name: "NodePort outside 30000-32767, ETP Local, ITP Local",
                yaml: serviceYAML("np", spec: """
                type: NodePort
                clusterIP: 10.96.0.11
                externalTrafficPolicy: Local
                internalTrafficPolicy: Local
                ports: [{port: 80, targetPort: 8080, nodePort: 8080}]
                """),
                expected: Service(metadata: meta("np"), type: .nodePort, clusterIPs: [ip("10.96.0.11")],
                                  ports: [ServicePort(port: 80, targetPort: .number(8080), nodePort: 8080)],
                                  externalTrafficPolicy: .local, internalTrafficPolicy: .local)),
        Decoded(name: "LoadBalancer: ingress, source ranges, health check port",
                yaml: serviceYAML("lb", spec: """
                type: LoadBalancer
                clusterIP: 10.96.0.12
                loadBalancerIP: 203.0.113.10
                loadBalancerSourceRanges: [192.0.2.0/24, " 198.51.100.7/16 ", "2001:db8::/32"]
                externalTrafficPolicy: Local
                healthCheckNodePort: 32000
                ports: [{name: http, port: 80, targetPort: 8080, nodePort: 31080}]
                """, status: """
                loadBalancer:
                  ingress:
                  - ip: 203.0.113.10
                  - {ip: "2001:db8::10", ipMode: Proxy}
                  - hostname: lb.example.com
                """),
                expected: Service(metadata: meta("lb"), type: .loadBalancer, clusterIPs: [ip("10.96.0.12")],
                                  ports: [ServicePort(name: "http", port: 80, targetPort: .number(8080), nodePort: 31080)],
                                  loadBalancerIP: ip("203.0.113.10"),
                                  loadBalancerSourceRanges: [cidr("192.0.2.0/24"), cidr("198.51.0.0/16"), cidr("2001:db8::/32")],
                                  loadBalancerIngress: [LoadBalancerIngress(ip: ip("203.0.113.10")),
                                                        LoadBalancerIngress(ip: ip("2001:db8::10"), ipMode: .proxy),
                                                        LoadBalancerIngress(hostname: "lb.example.com")],
                                  externalTrafficPolicy: .local, healthCheckNodePort: 32000)),
        Decoded(name: "ExternalName: clusterIP ignored, no ports needed",
                yaml: serviceYAML("ext", spec: "type: ExternalName\nexternalName: db.example.com\nclusterIP: whatever"),
                expected: Service(metadata: meta("ext"), type: .externalName, externalName: "db.example.com")),
        Decoded(name: "headless without ports",
                yaml: serviceYAML("hl", spec: "clusterIP: None\nselector: {app: db}"),
                expected: Service(metadata: meta("hl"), isHeadless: true, selector: ["app": "db"])),
        Decoded(name: "headless via clusterIPs, with ports",
                yaml: serviceYAML("hl2", spec: "clusterIP: None\nclusterIPs: [None]\nports: [{port: 5432}]"),
                expected: Service(metadata: meta("hl2"), isHeadless: true, ports: [ServicePort(port: 5432)])),
        Decoded(name: "dual-stack clusterIPs, IPv6 primary",
                yaml: serviceYAML("ds", spec: """
                clusterIP: "fd00:10:96::a"
                clusterIPs: ["fd00:10:96::a", 10.96.0.13]
                ipFamilies: [IPv6, IPv4]
                ipFamilyPolicy: RequireDualStack
                ports: [{port: 80}]
                """),
                expected: Service(metadata: meta("ds"), clusterIPs: [ip("fd00:10:96::a"), ip("10.96.0.13")],
                                  ports: [ServicePort(port: 80)], ipFamilies: [.ipv6, .ipv4])),
        Decoded(name: "clusterIPs only; not-yet-allocated clusterIP \"\"",
                yaml: serviceYAML("c2", spec: "clusterIP: \"\"\nports: [{port: 80}]"),
                expected: Service(metadata: meta("c2"), ports: [ServicePort(port: 80)])),
        Decoded(name: "ClientIP affinity defaults to 10800 s",
                yaml: serviceYAML("aff", spec: "clusterIP: 10.96.0.14\nsessionAffinity: ClientIP\nports: [{port: 80}]"),
                expected: Service(metadata: meta("aff"), clusterIPs: [ip("10.96.0.14")], ports: [ServicePort(port: 80)],
                                  sessionAffinity: .clientIP(timeoutSeconds: 10800))),
        Decoded(name: "ClientIP affinity with a timeout",
                yaml: serviceYAML("aff2", spec: """
                sessionAffinity: ClientIP
                sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
                ports: [{port: 80}]
                """),
                expected: Service(metadata: meta("aff2"), ports: [ServicePort(port: 80)], sessionAffinity: .clientIP(timeoutSeconds: 60))),
        Decoded(name: "affinity None ignores its config",
                yaml: serviceYAML("aff3", spec: """
                sessionAffinity: None
                sessionAffinityConfig: {clientIP: {timeoutSeconds: 999999}}
                ports: [{port: 80}]
                """),
                expected: Service(metadata: meta("aff3"), ports: [ServicePort(port: 80)])),
        Decoded(name: "externalIPs and publishNotReadyAddresses",
                yaml: serviceYAML("eip", spec: """
                externalIPs: [198.51.100.20, "2001:db8::20"]
                publishNotReadyAddresses: true
                ports: [{port: 80, targetPort: 0}]
                """),
                expected: Service(metadata: meta("eip"), ports: [ServicePort(port: 80)],
                                  externalIPs: [ip("198.51.100.20"), ip("2001:db8::20")], publishNotReadyAddresses: true)),
    ]

    @Test(arguments: decoded)
    func decodesRealisticManifests(_ c: Decoded) throws {
        let r = ManifestDecoder.decode(c.yaml, file: "svc.yaml")
        // Warnings (IPv6 parts, ignored fields) are ValidationRulesTests' subject; here: no errors.
        #expect(r.problems.filter(\.isError) == [])
        let service = try #require(r.objects.first?.service)
        #expect(service == c.expected)
        // The Codable form is the wire shape and reads back to the same value.
        let json = String(decoding: try JSONEncoder().encode(service), as: UTF8.self)
        #expect(ManifestDecoder.decode(json, file: "svc.json").objects == [.service(service)], "\(json)")
    }

    @Test func flagsAndKeys() throws {
        let r = ManifestDecoder.decode(Self.decoded.map(\.yaml).joined(separator: "---\n"), file: "all.yaml")
        let services = r.objects.compactMap(\.service)
        #expect(services.count == Self.decoded.count)
        #expect(services.filter(\.isHeadless).map(\.name) == ["hl", "hl2"])
        #expect(services.filter(\.isExternalName).map(\.name) == ["ext"])
        let web = try #require(services.first)
        #expect(web.key == ObjectKey(kind: .service, namespace: "shop", name: "web") && web.namespace == "shop")
        #expect(services[1].key.description == "Service/default/np")
        #expect(web.clusterIP == ip("10.96.0.10"))
        #expect(web.port(named: "dns", protocol: .udp)?.port == 53 && web.port(named: "dns") == nil)
        #expect(services[2].loadBalancerIngressIPs == [ip("203.0.113.10"), ip("2001:db8::10")])
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var name: String
        var yaml: String
        /// Every problem, as `field: reason`.
        var problems: [String]
        var testDescription: String { name }
    }

    static func bad(_ name: String, _ spec: String, status: String? = nil, _ problems: String...) -> Malformed {
        Malformed(name: name, yaml: serviceYAML("bad", spec: spec, status: status), problems: problems)
    }

    static let malformed: [Malformed] = [
        bad("clusterIP not an address", "clusterIP: 10.96.0.300\nports: [{port: 80}]",
            #"spec.clusterIP: "10.96.0.300" is not an IP address"#),
        bad("clusterIPs entry not an address", "clusterIPs: [10.96.0.1, \"fd00::zz\"]\nports: [{port: 80}]",
            #"spec.clusterIPs[1]: "fd00::zz" is not an IP address"#),
        bad("clusterIPs[0] differs from clusterIP", "clusterIP: 10.96.0.1\nclusterIPs: [10.96.0.2]\nports: [{port: 80}]",
            #"spec.clusterIPs[0]: "10.96.0.2" does not match spec.clusterIP "10.96.0.1""#),
        bad("two IPv4 clusterIPs", "clusterIPs: [10.96.0.1, 10.96.0.2]\nports: [{port: 80}]",
            "spec.clusterIPs: two IPv4 addresses (dual-stack needs one of each family)"),
        bad("None among addresses", "clusterIPs: [10.96.0.1, None]\nports: [{port: 80}]",
            #"spec.clusterIPs[1]: "None" must be the only entry"#),
        bad("headless NodePort", "type: NodePort\nclusterIP: None\nports: [{port: 80}]",
            #"spec.clusterIP: "None" (headless) is only valid for type ClusterIP, not NodePort"#),
        bad("unknown type", "type: Internal\nports: [{port: 80}]",
            #"spec.type: "Internal" is not ClusterIP, NodePort, LoadBalancer or ExternalName"#),
        bad("ExternalName without a name", "type: ExternalName",
            "spec.externalName: missing (required for type ExternalName)"),
        bad("ClusterIP without ports", "clusterIP: 10.96.0.1",
            "spec.ports: missing (required unless the Service is headless or ExternalName)"),
        bad("port 0", "ports: [{port: 0}]", "spec.ports[0].port: 0 is not a port number (1-65535)"),
        bad("port 70000", "ports: [{port: 70000}]", "spec.ports[0].port: 70000 is not a port number (1-65535)"),
        bad("port missing", "ports: [{targetPort: 80}]", "spec.ports[0].port: missing"),
        bad("port is a name", "ports: [{port: http}]", "spec.ports[0].port: expected an integer"),
        bad("unknown protocol", "ports: [{port: 80, protocol: ICMP}]", #"spec.ports[0].protocol: "ICMP" is not TCP, UDP or SCTP"#),
        bad("lowercase protocol", "ports: [{port: 80, protocol: tcp}]", #"spec.ports[0].protocol: "tcp" is not TCP, UDP or SCTP"#),
        bad("targetPort out of range", "ports: [{port: 80, targetPort: 65536}]",
            "spec.ports[0].targetPort: 65536 is not a port number (1-65535)"),
        bad("targetPort not a port name", "ports: [{port: 80, targetPort: Web_Port}]",
            #"spec.ports[0].targetPort: "Web_Port" is neither a port number nor a port name (at most 15 of a-z, 0-9, '-', with a letter)"#),
        bad("targetPort name too long", "ports: [{port: 80, targetPort: a-very-long-port-name}]",
            #"spec.ports[0].targetPort: "a-very-long-port-name" is neither a port number nor a port name (at most 15 of a-z, 0-9, '-', with a letter)"#),
        bad("nodePort out of range", "type: NodePort\nports: [{port: 80, nodePort: 70000}]",
            "spec.ports[0].nodePort: 70000 is not a port number (1-65535)"),
        bad("two ports, no names", "ports: [{port: 80}, {port: 443}]",
            "spec.ports[0].name: missing (required when a Service has more than one port)",
            "spec.ports[1].name: missing (required when a Service has more than one port)"),
        bad("duplicate port name", "ports: [{name: http, port: 80}, {name: http, port: 8080}]",
            #"spec.ports[1].name: duplicate name "http" (also spec.ports[0])"#),
        bad("duplicate port and protocol", "ports: [{name: a, port: 80}, {name: b, port: 80}]",
            "spec.ports[1].port: duplicate port 80/TCP (also spec.ports[0])"),
        bad("port name not a DNS label", "ports: [{name: HTTP, port: 80}]",
            #"spec.ports[0].name: "HTTP" is not a DNS label (lowercase letters, digits and '-')"#),
        bad("externalIP not an address", "externalIPs: [198.51.100.300]\nports: [{port: 80}]",
            #"spec.externalIPs[0]: "198.51.100.300" is not an IP address"#),
        bad("loadBalancerIP not an address", "type: LoadBalancer\nloadBalancerIP: lb.example.com\nports: [{port: 80}]",
            #"spec.loadBalancerIP: "lb.example.com" is not an IP address"#),
        bad("source range prefix too long", "type: LoadBalancer\nloadBalancerSourceRanges: [10.0.0.0/8, 10.0.0.0/33]\nports: [{port: 80}]",
            #"spec.loadBalancerSourceRanges[1]: "10.0.0.0/33" is not a CIDR"#),
        bad("source range without prefix", "type: LoadBalancer\nloadBalancerSourceRanges: [192.0.2.1]\nports: [{port: 80}]",
            #"spec.loadBalancerSourceRanges[0]: "192.0.2.1" is not a CIDR"#),
        bad("ingress ip not an address", "type: LoadBalancer\nports: [{port: 80}]",
            status: "loadBalancer: {ingress: [{ip: 203.0.113.999}]}",
            #"status.loadBalancer.ingress[0].ip: "203.0.113.999" is not an IP address"#),
        bad("ingress ipMode unknown", "type: LoadBalancer\nports: [{port: 80}]",
            status: "loadBalancer: {ingress: [{ip: 203.0.113.9, ipMode: DSR}]}",
            #"status.loadBalancer.ingress[0].ipMode: "DSR" is not VIP or Proxy"#),
        bad("unknown session affinity", "sessionAffinity: Cookie\nports: [{port: 80}]",
            #"spec.sessionAffinity: "Cookie" is not None or ClientIP"#),
        bad("affinity timeout 0", "sessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\nports: [{port: 80}]",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not in 1-86400 seconds"),
        bad("affinity timeout over a day", "sessionAffinity: ClientIP\nsessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\nports: [{port: 80}]",
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is not in 1-86400 seconds"),
        bad("unknown externalTrafficPolicy", "type: NodePort\nexternalTrafficPolicy: Global\nports: [{port: 80}]",
            #"spec.externalTrafficPolicy: "Global" is not Cluster or Local"#),
        bad("unknown internalTrafficPolicy", "internalTrafficPolicy: Node\nports: [{port: 80}]",
            #"spec.internalTrafficPolicy: "Node" is not Cluster or Local"#),
        bad("healthCheckNodePort out of range", "type: LoadBalancer\nhealthCheckNodePort: -1\nports: [{port: 80}]",
            "spec.healthCheckNodePort: -1 is not a port number (1-65535)"),
        bad("unknown IP family", "ipFamilies: [IPv5]\nports: [{port: 80}]", #"spec.ipFamilies[0]: "IPv5" is not IPv4 or IPv6"#),
        bad("ports is a map", "ports: {port: 80}", "spec.ports: expected a list"),
        bad("several bad fields at once", "clusterIP: nope\nports: [{port: 0, protocol: ICMP}]",
            #"spec.clusterIP: "nope" is not an IP address"#, #"spec.ports[0].protocol: "ICMP" is not TCP, UDP or SCTP"#,
            "spec.ports[0].port: 0 is not a port number (1-65535)"),
    ]

    /// Each malformed Service is reported with file, kind, name and the exact field and reason, and
    /// skipped; the Services around it are served.
    @Test(arguments: malformed)
    func malformedServiceIsReportedAndSkipped(_ c: Malformed) {
        let good1 = serviceYAML("good1", spec: "clusterIP: 10.96.0.1\nports: [{port: 80}]")
        let good3 = serviceYAML("good3", spec: "clusterIP: 10.96.0.3\nports: [{port: 80}]")
        let r = ManifestDecoder.decode([good1, c.yaml, good3].joined(separator: "---\n"), file: "svc.yaml")
        #expect(r.objects.compactMap(\.service?.name) == ["good1", "good3"])
        #expect(r.problems.filter(\.isError).map { "\($0.field): \($0.reason)" } == c.problems)
        #expect(r.problems.allSatisfy { $0.file == "svc.yaml" && $0.kind == "Service" && $0.objectName == "bad" && $0.document == 2 })
    }

    @Test func missingNameAndDuplicates() {
        let text = [serviceYAML("a", spec: "ports: [{port: 80}]"),
                    "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {ports: [{port: 80}]}\n",
                    serviceYAML("a", namespace: "other", spec: "ports: [{port: 81}]")].joined(separator: "---\n")
        let again = serviceYAML("a", namespace: "default", spec: "ports: [{port: 82}]")
        let r = ManifestDecoder.decode(files: [("b.yaml", again), ("a.yaml", text)])
        #expect(r.objects.compactMap(\.service).map { "\($0.namespace)/\($0.name)/\($0.ports[0].port)" } == ["default/a/80", "other/a/81"])
        #expect(r.problems.filter(\.isError).map(\.description) == [
            "a.yaml: Service (document 2): metadata.name: missing",
            #"b.yaml: Service "a": metadata.name: duplicate Service in namespace "default", first defined in a.yaml"#,
        ])
    }

    @Test func codableThrowsOnTheFirstBadField() {
        let bad = Data(#"{"metadata": {"name": "x"}, "spec": {"clusterIP": "1.2.3", "ports": [{"port": 80}]}}"#.utf8)
        #expect {
            try JSONDecoder().decode(Service.self, from: bad)
        } throws: { error in
            guard case DecodingError.dataCorrupted(let c) = error else { return false }
            return c.debugDescription == #"spec.clusterIP: "1.2.3" is not an IP address"#
        }
    }
}
