"""The nftables dataplane: typed objects, rendering of node views, transactions, a fake
with a packet tracer, and the adapter that runs ``nft``."""
