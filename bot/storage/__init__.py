"""Storage: database engines and sessions, the schema, portable SQL helpers, leases and migrations."""
