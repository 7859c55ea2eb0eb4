"""Helpers for tests, demos and the benchmark that need real servers, kept out of the engine: the Bolt test server
(arcadedb.py) and throwaway PostgreSQL databases (databases.py)."""
