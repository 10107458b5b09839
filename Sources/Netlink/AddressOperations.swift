import CMnl
import NetAddress

extension RouteSocket {
    /// Adds an address; throws EEXIST if the interface has it already.
    /// Kernel: RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL. Same as `ip addr add CIDR [brd B] dev X`.
    public func addAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try socket.request(AddressMessage.build(address, type: Int32(RTM_NEWADDR), flags: [.ack, .create, .exclusive]),
                           .newAddress, address.description)
    }

    /// Adds or updates an address. Kernel: RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE. Same as `ip addr replace`.
    public func replaceAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try socket.request(AddressMessage.build(address, type: Int32(RTM_NEWADDR), flags: [.ack, .create, .replace]),
                           .newAddress, address.description)
    }

    /// Removes an address; throws EADDRNOTAVAIL (`isAlreadyGone`) if it is not there.
    /// Kernel: RTM_DELADDR. Same as `ip addr del CIDR dev X`.
    public func deleteAddress(_ address: InterfaceAddress) throws(NetlinkError) {
        try socket.request(AddressMessage.build(address, type: Int32(RTM_DELADDR), flags: [.ack]), .delAddress, address.description)
    }

    /// Addresses of the namespace, optionally of one link and one family.
    /// Kernel: RTM_GETADDR dump. Same as `ip addr show [dev X]`.
    public func addresses(link: Int32? = nil, family: AddressFamily? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        try socket.dump(AddressMessage.dumpRequest(family: family), "addresses")
            .compactMap(AddressMessage.parse)
            .filter { link == nil || $0.linkIndex == link }
    }
}
