"""The PostgreSQL-protocol server: accepts clients, relays to PostgreSQL, rewrites vector SQL."""
