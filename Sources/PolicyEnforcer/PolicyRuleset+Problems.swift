import NFTables
import NetAddress

/// What keeld would not be able to program as the policies ask, found without a kernel, for
/// `keelctl validate` and `render`: the same checks the kernel makes on the policy table.
public struct PolicyProgrammingProblem: Sendable, Hashable, CustomStringConvertible {
    /// The policies concerned (empty when none is to blame, e.g. two pods sharing an address).
    public var policies: [PolicyRef]
    public var reason: String
    public var description: String {
        policies.isEmpty ? reason : policies.map { "NetworkPolicy \($0.namespace ?? "")/\($0.name)" }.joined(separator: ", ") + ": " + reason
    }
}

extension PolicyRuleset {
    /// Problems with programming `pods`: pods of the node that share an address with different rules
    /// (that address then allows nothing on the side concerned), elements of the rule sets that the
    /// kernel would refuse as overlapping, and anything else the transaction would be refused for.
    public static func problems(_ pods: [CompiledPod]) -> [PolicyProgrammingProblem] {
        var found: [PolicyProgrammingProblem] = []
        var byAddress: [IPv4Address: [CompiledPod]] = [:]
        for pod in pods { byAddress[pod.address, default: []].append(pod) }
        let shared = Dictionary(uniqueKeysWithValues: dispatchSides(pods).map { ($0.0, $0.1) })
        for (address, sharing) in byAddress.sorted(by: { $0.key < $1.key }) where sharing.count > 1 {
            let sides = shared[address]!
            for (side, rules, wanted) in [("ingress", sides.ingress, sharing.compactMap(\.ingress)),
                                          ("egress", sides.egress, sharing.compactMap(\.egress))]
            where rules == [] && wanted.contains(where: { !$0.isEmpty }) {
                found.append(PolicyProgrammingProblem(
                    policies: [], reason: "pods \(sharing.map(\.name).sorted().joined(separator: ", ")) share address \(address) "
                        + "with different \(side) rules: the address allows no \(side) connection (fail closed)"))
            }
        }
        let ruleset = ruleset(pods)
        if let error = transaction(from: nil, to: ruleset).validationError {
            found.append(PolicyProgrammingProblem(policies: [], reason: "the policy table would be refused: \(error)"))
        }
        let ids = RuleIDs(pods)
        var policiesByMark: [DataValue: Set<PolicyRef>] = [:]
        for pod in pods {
            for rule in (pod.ingress ?? []) + (pod.egress ?? []) {
                if let p = rule.policy { policiesByMark[.mark(ids[rule]), default: []].insert(p) }
            }
        }
        for set in ruleset.sets {
            for (a, b) in set.overlappingElements() {
                let blamed = [a, b].compactMap { $0.key.first.flatMap { policiesByMark[$0] } }.reduce(Set<PolicyRef>()) { $0.union($1) }
                found.append(PolicyProgrammingProblem(policies: blamed.sorted { "\($0)" < "\($1)" },
                                                      reason: "elements \(a) and \(b) of \(set.name) overlap: the kernel may refuse them (EEXIST)"))
            }
        }
        return found
    }
}
