"""A local cluster on one machine: ``chatrelay cluster up`` and ``chatrelay cluster status``.

- ``launcher``: starts redis-server, N workers, N gateways and nginx (through
  ``chatrelay.harness``), waits until each answers, supervises them and stops
  them all by pid;
- ``layout``: the ports, URLs and environment of every node, planned up front;
- ``children``: one started node, with its role and where it answers;
- ``nginx``: the load balancer's configuration, rendered from a template;
- ``manifest``: ``cluster.json``, what runs where;
- ``status``: the manifest as a table, each process alive or dead.
"""
