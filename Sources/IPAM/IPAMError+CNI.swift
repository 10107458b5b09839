import CNI

// IPAM's CNI codes, consulted by CNIError(mapping:) through CNIErrorConvertible.
extension IPAMError: CNIErrorConvertible {
    public var cniError: CNIError { CNIError(ipam: self) }
}

extension CNIError {
    /// Codes for `IPAMError`. Where the reference host-local returns a plain Go error, which skel
    /// turns into 999, Keel keeps 999 so that callers see the same codes from either plugin.
    public init(ipam error: IPAMError) {
        switch error {
        case let .invalidConfig(field, _):
            self.init(.invalidNetworkConfig, error.description, details: field)
        case let .io(operation, path, _):
            self.init(.ioFailure, error.description, details: "\(operation) \(quoted: path)")
        case .unavailable:
            self.init(.pluginNotAvailable, error.description)
        case .rangeExhausted, .requestedAddressUnavailable, .requestedAddressIsGateway,
             .requestedAddressesNotAllocated, .alreadyAllocated, .noReservation:
            self.init(.internalError, error.description)
        }
    }
}
