"""Filters of every frontend: the predicate model, PostgreSQL's type rules, rendering to SQL."""
