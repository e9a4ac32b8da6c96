-- Stock levels and the orders already decided on. Portable DDL: the same
-- file runs on SQLite and PostgreSQL (BIGINT and TEXT exist in both, and the
-- CHECK constraints are enforced by both).

-- Units on hand per catalog item. The CHECK is the last line of defence: the
-- decrement itself is guarded (`AND available >= $1`), so it never fires in
-- normal operation.
CREATE TABLE IF NOT EXISTS stock (
    item_id   BIGINT PRIMARY KEY,
    available BIGINT NOT NULL CHECK (available >= 0)
);

-- One row per order id, written in the same transaction as the stock change:
-- its primary key is what makes a redelivered message a no-op.
CREATE TABLE IF NOT EXISTS processed_orders (
    order_id     TEXT PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason       TEXT,
    total_amount BIGINT NOT NULL,
    items        TEXT NOT NULL,   -- the order lines as JSON: [{"id":1,"quantity":2}]
    processed_at BIGINT NOT NULL  -- unix milliseconds
);
