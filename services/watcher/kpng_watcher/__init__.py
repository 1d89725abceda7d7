"""kpng-watcher: watches a cluster source and publishes node views to NATS."""
