"""pytest plugin: Kafka, Redis, FTP/FTPS, HTTP and PostgreSQL fixtures (filled in by the test environment)."""
