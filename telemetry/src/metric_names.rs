//! The names of the metrics the services record and `checkout top` reads,
//! in one place, so that a renamed metric cannot leave the terminal view
//! reading a name nobody writes.
//!
//! The durations are the OpenTelemetry semantic conventions' (the
//! `opentelemetry-semantic-conventions` constants, release 1.42): histograms
//! in seconds, recorded with [`DURATION_BOUNDARIES`] and the conventions'
//! attributes (`error.type` on a failed operation, which is how `checkout top`
//! tells errors apart). For RPC, the conventions replaced `rpc.server.duration`
//! and `rpc.client.duration` (milliseconds) by `rpc.server.call.duration` and
//! `rpc.client.call.duration` (seconds); these are the current names.
//!
//! The `checkout.*` names are the pipeline's own, for what no convention
//! covers.

use opentelemetry_semantic_conventions::metric;

/// Duration of an HTTP request served (gateway, stock-service's API), in seconds.
pub const HTTP_SERVER_REQUEST_DURATION: &str = metric::HTTP_SERVER_REQUEST_DURATION;
/// Duration of a gRPC call served (checkout-service), in seconds.
pub const RPC_SERVER_DURATION: &str = metric::RPC_SERVER_CALL_DURATION;
/// Duration of a gRPC call made (the gateway's call to checkout-service), in seconds.
pub const RPC_CLIENT_DURATION: &str = metric::RPC_CLIENT_CALL_DURATION;
/// Duration of a publish until the broker confirmed it (checkout-service), in seconds.
pub const MESSAGING_CLIENT_OPERATION_DURATION: &str = metric::MESSAGING_CLIENT_OPERATION_DURATION;
/// Duration of processing one delivered message (stock-service), in seconds.
pub const MESSAGING_PROCESS_DURATION: &str = metric::MESSAGING_PROCESS_DURATION;
/// Duration of one database operation (stock-service), in seconds.
pub const DB_CLIENT_OPERATION_DURATION: &str = metric::DB_CLIENT_OPERATION_DURATION;

/// Every operation-duration histogram, in the order `checkout top` lists them.
pub const OPERATION_DURATIONS: [&str; 6] = [
    HTTP_SERVER_REQUEST_DURATION,
    RPC_CLIENT_DURATION,
    RPC_SERVER_DURATION,
    MESSAGING_CLIENT_OPERATION_DURATION,
    MESSAGING_PROCESS_DURATION,
    DB_CLIENT_OPERATION_DURATION,
];

/// Time from an order's publish to stock-service taking it up, in seconds (a
/// histogram): how far the consumer is behind.
pub const ORDER_LAG: &str = "checkout.order.lag";
/// Orders stock-service decided, a counter with [`ORDER_OUTCOME`].
pub const ORDERS_PROCESSED: &str = "checkout.orders.processed";
/// Units in stock, a gauge per item ([`ITEM_ID`]).
pub const STOCK_AVAILABLE: &str = "checkout.stock.available";

/// The attribute naming the item of a [`STOCK_AVAILABLE`] point.
pub const ITEM_ID: &str = "checkout.item.id";
/// The attribute holding an order's outcome (`applied`, `rejected`,
/// `duplicate`), as on stock-service's consumer span.
pub const ORDER_OUTCOME: &str = "stock.outcome";

/// Bucket boundaries, in seconds, of every duration histogram: from 100 µs,
/// where this pipeline's fastest operations are, to 10 s. The SDK's
/// default boundaries (0, 5, 10, … 10 000) are meant for milliseconds and
/// would put every request in seconds into its first bucket; the
/// conventions' advice starts at 5 ms, above most of these operations.
pub const DURATION_BOUNDARIES: [f64; 21] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
