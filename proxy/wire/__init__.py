"""The protocol seam: what an attempt sends to a target in the target's own protocol, and
the target's answer read back in the client's.

``outgoing`` builds an attempt's request (upstream path, body, translation chain) from the
client's protocol and the target's ``api`` (``policies.translate.paths``); ``stream`` wraps
a translated upstream stream so that everything after it — first-token hold, relay, codec,
stitching — reads the client's protocol; ``steps`` binds each translation module of
``policies.translate`` to the attempt it serves.
"""
