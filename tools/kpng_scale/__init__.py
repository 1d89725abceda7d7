"""kpng_scale: the watcher and a simulated cluster of agents at scale, measured (issue 6)."""
