"""sidestep's benchmark: ``python -m tests.bench`` (see ``tests.bench.runner``). Not collected
by pytest; ``tests/proxy/test_bench_smoke.py`` runs it once with ``--quick``."""
