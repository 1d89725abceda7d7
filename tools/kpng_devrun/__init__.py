"""Runs kpng locally: an embedded nats-server, the watcher, one agent per node, the observer."""
