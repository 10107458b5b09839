import CNI
import PodNetwork

CNIEntry.exit(running: OverlayPlugin(backend: "host-gw"), about: "Keel host-gw CNI plugin")
