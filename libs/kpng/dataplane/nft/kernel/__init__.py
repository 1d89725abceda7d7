"""The nftables I/O adapters: the ``nft`` command, the netlink socket, and the backend
that combines them."""
