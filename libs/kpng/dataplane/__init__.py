"""The agent's side: the ``Backend`` seam, port claims, health checks, conntrack cleanup
plans and the nftables backend."""
