import CNI
import IPAM
import PodNetwork

CNIEntry.exit(running: OverlayPlugin(backend: "host-gw", ipamCheck: HostLocalPlugin.checkDelegatedConfig), about: "Keel host-gw CNI plugin")
