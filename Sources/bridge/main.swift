import CNI
import PodNetwork

CNIEntry.exit(running: BridgePlugin(), about: "Keel bridge CNI plugin")
