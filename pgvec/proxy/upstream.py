"""Where PostgreSQL is: defined in :mod:`pgvec.service.upstream`, shared by every frontend."""

from pgvec.service.upstream import Upstream

__all__ = ["Upstream"]
