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

    /// Adds or updates many addresses, pipelined (one ACK each, as `ip -batch` of `ip addr replace`).
    /// Every one is attempted; the first failure is thrown after the rest went through.
    /// Kernel: RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE.
    public func replaceAddresses(_ addresses: [InterfaceAddress]) throws(NetlinkError) {
        guard !addresses.isEmpty else { return }
        try socket.requestAll(addresses.map {
            (AddressMessage.build($0, type: Int32(RTM_NEWADDR), flags: [.ack, .create, .replace]), .newAddress, $0.description)
        })
    }

    /// Removes many addresses, pipelined; the first failure (EADDRNOTAVAIL for one that is gone
    /// included) is thrown after the rest went through. Kernel: RTM_DELADDR.
    public func deleteAddresses(_ addresses: [InterfaceAddress]) throws(NetlinkError) {
        guard !addresses.isEmpty else { return }
        try socket.requestAll(addresses.map { (AddressMessage.build($0, type: Int32(RTM_DELADDR), flags: [.ack]), .delAddress, $0.description) })
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
