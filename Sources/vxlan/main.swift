import CNI
import IPAM
import PodNetwork

CNIEntry.exit(running: OverlayPlugin(backend: "vxlan", ipamCheck: HostLocalPlugin.checkDelegatedConfig), about: "Keel vxlan CNI plugin")
