"""The nftables dataplane: typed objects, rendering of node views, planning, transactions, a
fake with a packet tracer (all pure), the netlink codecs (``netlink/``, pure) and the kernel
adapters (``kernel/``)."""
