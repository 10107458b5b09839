import CNI
import PodNetwork

CNIEntry.exit(running: LoopbackPlugin(), about: "Keel loopback CNI plugin")
