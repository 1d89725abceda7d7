"""nf_tables over netlink: messages, batches, dumps and set elements as bytes. Pure: the
socket is in :mod:`kpng.dataplane.nft.kernel`."""
