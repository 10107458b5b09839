/// A `meta/v1 LabelSelector`: `matchLabels` and `matchExpressions`, ANDed.
///
/// The empty selector (`{}`) matches every label set; NetworkPolicy uses it for "all pods" and
/// "all namespaces". A nil selector (the field absent) is a different thing, and the types that
/// hold one say what it means.
public struct LabelSelector: Hashable, Sendable, CustomStringConvertible {
    public var matchLabels: [String: String]
    public var matchExpressions: [LabelSelectorRequirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [LabelSelectorRequirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// `{}`: selects everything.
    public static let everything = LabelSelector()
    public var isEmpty: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    /// True when every `matchLabels` pair and every requirement holds for `labels`.
    public func matches(_ labels: [String: String]) -> Bool {
        matchLabels.allSatisfy { labels[$0.key] == $0.value } && matchExpressions.allSatisfy { $0.matches(labels) }
    }

    /// `app=web,tier in (a,b),!debug`, like `kubectl get -l`; `<all>` for the empty selector.
    public var description: String {
        let parts = matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            + matchExpressions.map(\.description)
        return parts.isEmpty ? "<all>" : parts.joined(separator: ",")
    }
}

/// One entry of `matchExpressions`.
public struct LabelSelectorRequirement: Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var `operator`: LabelSelectorOperator
    /// Non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist` (validation enforces it).
    public var values: [String]

    public init(key: String, _ op: LabelSelectorOperator, _ values: [String] = []) {
        self.key = key
        self.operator = op
        self.values = values
    }

    public func matches(_ labels: [String: String]) -> Bool {
        let value = labels[key]
        switch `operator` {
        case .in: return value.map(values.contains) ?? false
        case .notIn: return value.map { !values.contains($0) } ?? true   // an absent key is "not in"
        case .exists: return value != nil
        case .doesNotExist: return value == nil
        }
    }

    public var description: String {
        switch `operator` {
        case .in: "\(key) in (\(values.joined(separator: ",")))"
        case .notIn: "\(key) notin (\(values.joined(separator: ",")))"
        case .exists: key
        case .doesNotExist: "!\(key)"
        }
    }
}

public enum LabelSelectorOperator: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case `in` = "In"
    case notIn = "NotIn"
    case exists = "Exists"
    case doesNotExist = "DoesNotExist"
    public var description: String { rawValue }
}

// MARK: - Wire form and validation

struct LabelSelectorManifest: Codable, Hashable {
    struct Requirement: Codable, Hashable {
        var key: String?
        var `operator`: String?
        var values: [String]?
    }
    var matchLabels: [String: String]?
    var matchExpressions: [Requirement]?
}

extension FieldChecks {
    /// A label selector at `field` (`spec.podSelector`). Nil when any part is bad.
    mutating func selector(_ m: LabelSelectorManifest, _ field: String) -> LabelSelector? {
        let before = issues.count
        for (key, value) in (m.matchLabels ?? [:]).sorted(by: { $0.key < $1.key }) {
            if key.isEmpty {
                fail(field + ".matchLabels", "empty label key")
            } else if let problem = Self.qualifiedNameProblem(key) {
                fail(field + ".matchLabels", "key \(problem)")
            } else if !Self.isLabelValue(value) {
                fail("\(field).matchLabels[\(key)]", "\"\(value)\" is not a label value (\(Self.labelValueRule))")
            }
        }
        var requirements: [LabelSelectorRequirement] = []
        for (i, r) in (m.matchExpressions ?? []).enumerated() {
            let f = "\(field).matchExpressions[\(i)]"
            let key = r.key ?? ""
            if key.isEmpty {
                fail(f + ".key", "missing")
            } else if let problem = Self.qualifiedNameProblem(key) {
                fail(f + ".key", problem)
            }
            guard let text = r.operator else {
                fail(f + ".operator", "missing")
                continue
            }
            guard let op = oneOf(text, f + ".operator", default: LabelSelectorOperator.in) else { continue }
            let values = r.values ?? []
            switch op {
            case .in, .notIn:
                if values.isEmpty { fail(f + ".values", "missing (required for \(op))") }
                // Kubernetes still stores such selectors from before it checked them
                // (AllowInvalidLabelValueInSelector): kept, as no label can hold the value.
                for (j, value) in values.enumerated() where !Self.isLabelValue(value) {
                    warn("\(f).values[\(j)]", "\"\(value)\" is not a label value (\(Self.labelValueRule)): no label matches it")
                }
            case .exists, .doesNotExist:
                if !values.isEmpty { fail(f + ".values", "must be empty for \(op)") }
            }
            requirements.append(LabelSelectorRequirement(key: key, op, values))
        }
        guard issues.count == before else { return nil }
        return LabelSelector(matchLabels: m.matchLabels ?? [:], matchExpressions: requirements)
    }
}

extension LabelSelector {
    var manifest: LabelSelectorManifest {
        LabelSelectorManifest(
            matchLabels: matchLabels.isEmpty ? nil : matchLabels,
            matchExpressions: matchExpressions.isEmpty ? nil : matchExpressions.map {
                .init(key: $0.key, operator: $0.operator.rawValue, values: $0.values.isEmpty ? nil : $0.values)
            })
    }
}
