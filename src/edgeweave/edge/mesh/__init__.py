"""The mesh host on a node: the pure mesh engines (``edgeweave.mesh``) run from the local store.

What belongs here: reading Services and Endpoints from the agent's store into the catalog
(``objects``, ``host``), the service addresses (``addresses``), one proxy listener per service
port (``listeners``), the path to each peer node (``paths``), both ends of the relay through
the cloud (``relay``, ``bridge``), and starting it all (``serve``). What does not: anything of
the cloud, the link's protocol loop (it hands ``relay_open`` over), or the runtime (it asks
``MeshHost.app_env`` for apps' environment).
"""

from edgeweave.edge.mesh.host import MeshHost
from edgeweave.edge.mesh.relay import RelayTarget
from edgeweave.edge.mesh.serve import cached_context, open_mesh_host

__all__ = ["MeshHost", "RelayTarget", "cached_context", "open_mesh_host"]
