//! The metrics contract: the names (and the attributes that tell series apart)
//! of the metrics the services record and `checkout top` reads.
//!
//! A metric's name is what the recording service and every reader must agree
//! on byte for byte, like a queue name; kept here, a rename reaches both at
//! compile time. Services record them through `telemetry::metric_names`,
//! which re-exports this module with the histograms' bucket boundaries.
//!
//! The durations are the OpenTelemetry semantic conventions' (release 1.42,
//! the one `opentelemetry-semantic-conventions` 0.33 carries; a test in the
//! telemetry crate checks the strings against its constants): histograms in
//! seconds, with the conventions' attributes, `error.type` on a failed
//! operation (which is how `checkout top` counts errors). For RPC the
//! conventions replaced `rpc.server.duration` and `rpc.client.duration`
//! (milliseconds) by `rpc.server.call.duration` and `rpc.client.call.duration`
//! (seconds); these are the current names. The `checkout.*` names are the
//! pipeline's own, for what no convention covers.

/// Duration of an HTTP request served (gateway, stock-service's API), in seconds.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
/// Duration of an HTTP request made (the gateway's order-status call to
/// stock-service), in seconds.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// Duration of a gRPC call made (the gateway's call to checkout-service), in seconds.
pub const RPC_CLIENT_DURATION: &str = "rpc.client.call.duration";
/// Duration of a gRPC call served (checkout-service), in seconds.
pub const RPC_SERVER_DURATION: &str = "rpc.server.call.duration";
/// Duration of a publish until the broker confirmed it (checkout-service), in seconds.
pub const MESSAGING_CLIENT_OPERATION_DURATION: &str = "messaging.client.operation.duration";
/// Duration of processing one delivered message (stock-service), in seconds.
pub const MESSAGING_PROCESS_DURATION: &str = "messaging.process.duration";
/// Duration of one database operation (stock-service), in seconds.
pub const DB_CLIENT_OPERATION_DURATION: &str = "db.client.operation.duration";

/// Every operation-duration histogram, in the order `checkout top` lists them:
/// the order a checkout goes through them, then the order-status call.
pub const OPERATION_DURATIONS: [&str; 7] = [
    HTTP_SERVER_REQUEST_DURATION,
    RPC_CLIENT_DURATION,
    RPC_SERVER_DURATION,
    MESSAGING_CLIENT_OPERATION_DURATION,
    MESSAGING_PROCESS_DURATION,
    DB_CLIENT_OPERATION_DURATION,
    HTTP_CLIENT_REQUEST_DURATION,
];

/// Messages published and confirmed or refused (checkout-service): a
/// counter (`{message}`), `error.type` on the ones that failed.
pub const MESSAGING_CLIENT_SENT_MESSAGES: &str = "messaging.client.sent.messages";
/// Messages delivered to the consumer (stock-service): a counter
/// (`{message}`), `error.type` on the ones it could not process.
pub const MESSAGING_CLIENT_CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";

/// Time from an order's publish (the publisher's clock, in the
/// [`crate::amqp::PUBLISHED_AT_HEADER`] header) to stock-service committing
/// its outcome (stock-service's clock), in seconds (a histogram): how far
/// behind the pipeline is, end to end. The two clocks are those of two
/// machines in production; the lag is as good as their synchronisation.
pub const ORDER_LAG: &str = "checkout.order.lag";
/// Orders, one series per [`ORDER_OUTCOME`], across the services: a counter
/// (`{order}`). checkout-service counts `accepted` (published and
/// confirmed); stock-service counts `applied`, `duplicate`, `rejected` and
/// `dead_lettered`. One counter rather than one per service, so that a
/// single query compares what was accepted with what was applied.
pub const ORDERS_PROCESSED: &str = "checkout.orders";
/// Units in stock: a gauge, one series per item ([`ITEM_ID`]).
pub const STOCK_AVAILABLE: &str = "checkout.stock.available";
/// Whether the service's connection to the broker is up (1) or not (0): a
/// gauge, in checkout-service (its publishing channel) and stock-service
/// (its subscription).
pub const BROKER_CONNECTED: &str = "checkout.broker.connected";

/// The attribute naming the item of a [`STOCK_AVAILABLE`] point.
pub const ITEM_ID: &str = "checkout.item.id";
/// The attribute holding an order's outcome on [`ORDERS_PROCESSED`]; the
/// values are [`ORDER_OUTCOMES`].
pub const ORDER_OUTCOME: &str = "checkout.order.outcome";
/// Every value of [`ORDER_OUTCOME`], in the order an order meets them.
pub const ORDER_OUTCOMES: [&str; 5] = [
    "accepted",
    "applied",
    "duplicate",
    "rejected",
    "dead_lettered",
];
/// The attribute a failed operation carries (the conventions' `error.type`).
pub const ERROR_TYPE: &str = "error.type";
