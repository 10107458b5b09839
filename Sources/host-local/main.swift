import CNI
import IPAM

CNIEntry.exit(running: HostLocalPlugin(), about: "Keel host-local IPAM plugin")
