"""kpng: the operator's command line over the observer's HTTP API (status, services,
explain, watch)."""
