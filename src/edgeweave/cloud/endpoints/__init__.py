"""Service endpoints in the cloud: which App instances, on which node and port, serve a Service.

What belongs here: deriving each Service's read-only ``Endpoints`` object from Services, Apps'
per-node status and Nodes' addresses (``derive``, pure), and the controller that keeps those
objects in the store (``controller``). What does not: sending them to nodes (the hub's index
does, to every node that receives the Service), relaying traffic (``cloud.hub.relay``), or
anything of ``edgeweave.edge``.
"""

from edgeweave.cloud.endpoints.controller import EndpointsController, open_endpoints_controller

__all__ = ["EndpointsController", "open_endpoints_controller"]
