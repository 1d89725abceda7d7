"""The watcher's side: cluster state to node views, and views to the deltas and snapshots
published on the bus. Pure."""
