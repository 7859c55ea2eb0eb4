"""Helpers for tests and demos that need real servers (the Bolt test server), kept out of the engine."""
