"""kpng: the library of a Kubernetes service proxy built as services over a NATS bus.

The packages by role, each layer importing only those below it (checked by import-linter,
``[tool.importlinter]`` in pyproject.toml):

- :mod:`kpng.fanout`: the watcher's side, cluster state to per-node views, deltas and
  snapshots (pure);
- :mod:`kpng.dataplane`: the agent's side, the ``Backend`` seam, port claims, health,
  conntrack planning and the nftables backend (``nft/`` and ``nft/netlink/`` pure,
  ``nft/kernel/`` the I/O adapters);
- :mod:`kpng.observe`: the observer's side, packet explanations and view JSON (pure);
- :mod:`kpng.bus`: the bus contract and the SDK third parties use: subjects, codec,
  consumer (pure), the ``Bus`` seam with its NATS adapter and in-memory fake, the client;
- :mod:`kpng.runtime`: what every process does the same way: logging, signals, metrics,
  GC pauses, clocks;
- the core, pure values and functions: :mod:`kpng.model`, :mod:`kpng.parse`,
  :mod:`kpng.source`, :mod:`kpng.diff`, :mod:`kpng.labels`.
"""

__version__ = "0.1.0"
