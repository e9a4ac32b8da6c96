-- The retention purge deletes the oldest processed orders, a chunk at a time
-- (`processed_at < $1 ORDER BY processed_at LIMIT $2`); this index finds them
-- without scanning the table. Portable DDL: SQLite and PostgreSQL both
-- understand it. On PostgreSQL the build blocks writes to the table while it
-- runs (migrations run in a transaction, where CONCURRENTLY is not allowed):
-- on a large existing table, run this migration at a quiet moment.
CREATE INDEX IF NOT EXISTS processed_orders_processed_at
    ON processed_orders (processed_at);
