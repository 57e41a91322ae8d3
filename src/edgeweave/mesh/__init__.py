"""The service discovery mesh (DESIGN.md §7): endpoint catalog, load balancers, DNS, TCP proxy.

What belongs here: engines that answer "where does ``<service>.<namespace>`` go?" and carry the
bytes there — the pure catalog and balancers, and the DNS responder and TCP proxy that host
them on sockets. What does not: anything that knows about the cloud or the edge agent (who
feeds the catalog, where the relay lives, which node we are). Those hosts live in ``edge``;
they plug in through the catalog's update methods and the proxy's injectable ``connect``.
"""
