"""The one process harness: the cluster launcher, the test fixtures and bench/ all use it.

- ``processes``: free loopback ports, finding a binary, starting it with its
  output in a log file, stopping it by pid (SIGTERM, a grace, then SIGKILL).
- ``readiness``: waiting until a started process is healthy (TCP accept,
  ``GET /health`` 200, or any callable), failing fast with the log's tail when
  it exits instead.
- ``redis``: the one way to run ``redis-server`` and ask it a command.
- ``postgres``: the one way to run a throw-away PostgreSQL server
  (``cluster up``, the store fixtures, ``bench/``).
"""
