"""Fixture modules, as psycopg's tests load theirs."""

pytest_plugins = [
    "cert_loader_tests.fix_pg",
    "cert_loader_tests.fix_graph",
    "cert_loader_tests.fix_district",
    "cert_loader_tests.fix_role",
]
