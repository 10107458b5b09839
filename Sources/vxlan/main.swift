import CNI
import PodNetwork

CNIEntry.exit(running: OverlayPlugin(backend: "vxlan"), about: "Keel vxlan CNI plugin")
