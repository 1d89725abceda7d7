"""kpng-observer: cluster and per-node state, programming status, over HTTP."""
