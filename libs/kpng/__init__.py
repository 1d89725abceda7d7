"""kpng: the core library of a Kubernetes service proxy built over a NATS bus.

The pure core (no I/O): :mod:`kpng.model`, :mod:`kpng.parse`, :mod:`kpng.fanout.cluster`,
:mod:`kpng.fanout.views`, :mod:`kpng.diff`, :mod:`kpng.bus.codec`. The bus protocol and the client
third parties use: :mod:`kpng.bus`.
"""

__version__ = "0.1.0"
