import CNI
import IPAM
import PodNetwork

CNIEntry.exit(running: BridgePlugin(ipamCheck: HostLocalPlugin.checkDelegatedConfig), about: "Keel bridge CNI plugin")
