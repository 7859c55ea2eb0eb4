"""Store clients: PostgreSQL (psycopg) and the graph (neo4j driver)."""
