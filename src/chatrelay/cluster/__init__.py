"""A local cluster on one machine: ``chatrelay cluster up`` and ``chatrelay cluster status``.

- ``launcher``: starts redis-server, N workers, N gateways and nginx, waits
  until each answers, supervises them and stops them all by pid;
- ``children``: one started process, and stopping a group of them;
- ``nginx``: the load balancer's configuration, rendered from a template;
- ``binaries``: finding ``redis-server`` and ``nginx``, or naming the package;
- ``manifest``: ``cluster.json``, what runs where;
- ``status``: the manifest as a table, each process alive or dead.
"""
