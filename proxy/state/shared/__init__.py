"""State shared between replicas through Redis (``state: {backend: redis}``).

``replica.Replica`` is the backend a gateway holds as ``Gateway.shared``: ``link`` keeps the
connection (a change channel, an outbox, up/down with backoff), ``messages`` is the record
replicas exchange, ``gates`` the two atomic checks on the request path (shared budget, one
half-open probe across replicas), ``affinity`` the shared session → target table. Requires
the ``redis`` extra; imported only when the backend is redis.
"""
