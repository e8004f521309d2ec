"""sidestep's pure core: decisions, breaker and cooldown state, error classification, budgets.

Nothing here performs I/O or reads a clock: time comes in as ``now`` (monotonic seconds) and,
where a wall-clock date must be converted, ``wall_now`` (Unix seconds). The imperative shell in
``proxy/`` asks these modules what to do and does it.
"""
