"""A Kubernetes-like cluster made of network namespaces, for end-to-end tests and `make run`:
nodes with a pod bridge and pods, an underlay between the nodes, an outside client, and an
infra namespace that runs NATS and the watcher. Nothing outside its namespaces is touched."""
