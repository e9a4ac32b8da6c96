-- Exactly-once by what the client sent, not only by order id: a checkout's
-- order id is derived under checkout-service's key, which may differ between
-- replicas or across a restart, so a retry of one checkout (the same client
-- and Idempotency-Key) can arrive under a second order id. Its message
-- carries the fingerprint of (client, key), recorded here with the order;
-- the unique index lets one order per fingerprint in, atomically with the
-- claim of its order id (the same INSERT). The second order id is recorded
-- as well, without a fingerprint, with the order it duplicates, so its
-- status can say so; its status stays within the CHECK of the first
-- migration ('rejected': no stock was taken), shown as `duplicate`.
-- Both columns are NULL for older rows and for messages without a key.
-- Portable DDL: SQLite and PostgreSQL both allow many NULLs in a unique index.
-- Adding the nullable columns rewrites nothing; building the index on
-- PostgreSQL blocks writes to the table while it runs (no CONCURRENTLY inside
-- a migration's transaction): on a large existing table, run it at a quiet
-- moment.
ALTER TABLE processed_orders ADD COLUMN request_fingerprint TEXT;
ALTER TABLE processed_orders ADD COLUMN duplicate_of TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS processed_orders_request_fingerprint
    ON processed_orders (request_fingerprint);
