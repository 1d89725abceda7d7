"""A Kubernetes API simulator for tests and demos: list/watch, pagination, 410s, kubectl."""

from kpng_apisim.errors import ApiError
from kpng_apisim.simulator import ApiSimulator
from kpng_apisim.store import Event, Store

__all__ = ["ApiError", "ApiSimulator", "Event", "Store"]
