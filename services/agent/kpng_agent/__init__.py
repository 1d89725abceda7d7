"""kpng-agent: programs one node's dataplane from its view on the bus."""
