//! The vocabulary of stock-service: what can happen to an order, and what is
//! remembered about it.
//!
//! These types carry no I/O, so the consumer, the store and the HTTP API all
//! speak about an order the same way.

use std::{fmt, str::FromStr};

use contracts::amqp::OrderLine;
use uuid::Uuid;

/// What applying a `checkout.processed` message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stock was decremented by every line of the order.
    Applied,
    /// The order was processed before (a redelivery or a duplicate publish);
    /// nothing changed.
    Duplicate,
    /// Another order id of the same checkout (the same request fingerprint:
    /// client and idempotency key) was applied before; nothing changed, and
    /// this order id is recorded as its duplicate.
    DuplicateOf {
        /// The order id the checkout was applied under.
        order_id: Uuid,
    },
    /// The order cannot be served (unknown item, or not enough stock). It is
    /// recorded as rejected with this reason and stock is unchanged.
    Rejected {
        /// Why, for example `insufficient stock for item 3`.
        reason: String,
    },
}

impl Outcome {
    /// A short label for logs and the `stock.outcome` span attribute.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate | Self::DuplicateOf { .. } => "duplicate",
            Self::Rejected { .. } => "rejected",
        }
    }
}

/// The recorded final state of a processed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Stock was decremented.
    Applied,
    /// Stock was not touched; see [`OrderRecord::reason`].
    Rejected,
    /// Another order id of the same checkout was applied; see
    /// [`OrderRecord::duplicate_of`]. Stored as `rejected` with the order it
    /// duplicates (no stock was taken for it).
    Duplicate,
}

impl OrderStatus {
    /// The value stored in `processed_orders.status` and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Duplicate => contracts::http::ORDER_STATUS_DUPLICATE,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "applied" => Ok(Self::Applied),
            "rejected" => Ok(Self::Rejected),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

/// One row of `processed_orders`: an order stock-service has decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    /// The order id (the idempotency key).
    pub order_id: Uuid,
    /// Applied, rejected, or a duplicate.
    pub status: OrderStatus,
    /// Why it was rejected, or what it duplicates; `None` when applied.
    pub reason: Option<String>,
    /// For a duplicate: the order id the checkout was applied under.
    pub duplicate_of: Option<Uuid>,
    /// The order's price, as published.
    pub total_amount: i64,
    /// The order lines, as published.
    pub items: Vec<OrderLine>,
    /// When the decision was committed, in milliseconds since the Unix epoch.
    pub processed_at_ms: i64,
}
