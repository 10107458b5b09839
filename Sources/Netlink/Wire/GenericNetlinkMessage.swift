/// Generic netlink (NETLINK_GENERIC) encoding and decoding, include/uapi/linux/genetlink.h.
///
/// Layout: nlmsghdr (type = the family's id) + genlmsghdr (cmd u8, version u8, reserved u16; 4 bytes,
/// already NLMSG-aligned), then the family's attributes. Family ids are handed out at registration
/// time, except nlctrl's (GENL_ID_CTRL = 0x10), which is how every other id is looked up.
///
/// The CMnl shim does not include genetlink.h: the few values used are written out here, and the
/// kernel keeps UAPI numbers stable.
enum GenericNetlinkMessage {
    /// GENL_HDRLEN.
    static let headerSize = 4

    /// nlctrl: the controller family (GENL_ID_CTRL, CTRL_CMD_*, CTRL_ATTR_*).
    enum Controller {
        static let familyID: UInt16 = 0x10        // GENL_ID_CTRL = NLMSG_MIN_TYPE
        /// The controller family's own version (genl_ctrl.version); the kernel accepts any.
        static let version: UInt8 = 2
        static let newFamily: UInt8 = 1           // CTRL_CMD_NEWFAMILY: GETFAMILY's answer
        static let getFamily: UInt8 = 3           // CTRL_CMD_GETFAMILY
        static let attrFamilyID: UInt16 = 1       // CTRL_ATTR_FAMILY_ID (u16)
        static let attrFamilyName: UInt16 = 2     // CTRL_ATTR_FAMILY_NAME (string)
        static let attrVersion: UInt16 = 3        // CTRL_ATTR_VERSION (u32)
        static let attrHeaderSize: UInt16 = 4     // CTRL_ATTR_HDRSIZE (u32)
        static let attrMaxAttribute: UInt16 = 5   // CTRL_ATTR_MAXATTR (u32)
        static let attrMulticastGroups: UInt16 = 7 // CTRL_ATTR_MCAST_GROUPS: nest of nests, one per group
        static let groupAttrName: UInt16 = 1      // CTRL_ATTR_MCAST_GRP_NAME (string)
        static let groupAttrID: UInt16 = 2        // CTRL_ATTR_MCAST_GRP_ID (u32)
    }

    /// The fixed header after nlmsghdr (struct genlmsghdr).
    struct Header: Equatable {
        var command: UInt8
        var version: UInt8
    }

    /// A request to `family` with `command`; the caller adds the attributes.
    static func request(family: UInt16, command: UInt8, version: UInt8, flags: NetlinkFlags = []) -> NetlinkMessageBuilder {
        let m = NetlinkMessageBuilder(type: family, flags: flags)
        // Four bytes: a tuple keeps the byte layout explicit (cmd, version, reserved).
        m.putFamilyHeader((command, version, UInt16(0)))
        return m
    }

    /// CTRL_CMD_GETFAMILY naming the family by CTRL_ATTR_FAMILY_NAME.
    static func getFamilyRequest(name: String) -> NetlinkMessageBuilder {
        let m = request(family: Controller.familyID, command: Controller.getFamily, version: Controller.version)
        m.put(Controller.attrFamilyName, string: name)
        return m
    }

    static func header(_ message: NetlinkMessage) -> Header? {
        guard message.payload.count >= headerSize else { return nil }
        return Header(command: message.payload[0], version: message.payload[1])
    }

    static func attributes(_ message: NetlinkMessage) -> NetlinkAttributes {
        message.attributes(afterHeaderOf: headerSize)
    }

    /// The family from a CTRL_CMD_NEWFAMILY message (GETFAMILY's answer); nil for anything else.
    static func parseFamily(_ message: NetlinkMessage) -> GenericNetlinkFamily? {
        guard message.type == Controller.familyID, header(message)?.command == Controller.newFamily else { return nil }
        let attrs = attributes(message)
        guard let name = attrs.string(Controller.attrFamilyName), let id = attrs.u16(Controller.attrFamilyID) else { return nil }
        var groups: [GenericNetlinkFamily.MulticastGroup] = []
        for entry in attrs.nested(Controller.attrMulticastGroups)?.ordered ?? [] {
            let group = NetlinkAttributes(parsing: entry.value)
            guard let groupName = group.string(Controller.groupAttrName), let groupID = group.u32(Controller.groupAttrID) else { continue }
            groups.append(.init(name: groupName, id: groupID))
        }
        return GenericNetlinkFamily(name: name, id: id, version: attrs.u32(Controller.attrVersion) ?? 0,
                                    headerSize: attrs.u32(Controller.attrHeaderSize) ?? 0,
                                    maxAttribute: attrs.u32(Controller.attrMaxAttribute) ?? 0,
                                    multicastGroups: groups)
    }
}
