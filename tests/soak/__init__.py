"""A chaos soak of sidestep: ``python -m tests.soak --help``.

Fault-injecting fake providers (``faults``) on loopback, sidestep in front, a seeded mix of
streaming and non-streaming requests through the official openai SDK (``run``), each judged
as exact, a clean error, a hang, a corrupted answer or an unclean error (``outcome``), and a
summary (``report``). ``tests/proxy/test_soak.py`` runs a short seeded soak in the suite;
pytest does not collect this package (``norecursedirs``).
"""
