//! What stock-service decided for orders the gateway accepted.
//!
//! The gateway's 202 means the broker has the order; stock-service decides afterwards
//! and may still reject it (not enough stock, an unknown item), recording the reason.
//! The client that got the 202 never hears of it, so a load run that only counts HTTP
//! statuses reports every request a success long after the stock ran out. This module
//! asks stock-service (`GET /api/orders/{orderId}`) about each accepted order, a bounded
//! number at a time, asks again about the ones it has not processed yet until a
//! deadline, and sums up: applied, rejected (by reason), not yet processed.
//!
//! Each question carries a W3C `traceparent` with the sampled flag off: the questions
//! are this tool looking at the pipeline, not traffic anyone wants traced, and with the
//! services' default parent-based sampler they leave nothing for `checkout traces` or
//! Jaeger to show (otherwise a one-span trace per order after every load run).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use contracts::error::ErrorBody;
use contracts::http::{ORDER_STATUS_DUPLICATE, OrderView};
use futures::StreamExt;
use tokio::time::Instant;

use crate::checkout::TraceContext;

/// Questions to stock-service in flight at once: enough to get through thousands of
/// orders in seconds, few enough not to compete with the pipeline on a small machine.
pub const CONCURRENCY: usize = 16;

/// Pause before asking again about orders stock-service has not processed yet.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Rejection reasons shown by name; the rest are counted together.
const REASONS_SHOWN: usize = 3;

/// What stock-service answered about one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The stock was taken.
    Applied,
    /// Recorded as rejected, with stock-service's reason.
    Rejected(String),
    /// 404: not processed (yet).
    NotYet,
    /// An error status or an unreadable body: what went wrong.
    Failed(String),
}

/// What stock-service decided for a set of accepted orders.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderOutcomes {
    /// Orders asked about.
    pub checked: usize,
    /// Orders applied.
    pub applied: usize,
    /// Orders rejected.
    pub rejected: usize,
    /// Every rejection reason with its count, most common first (then by text).
    pub reasons: Vec<(String, usize)>,
    /// Orders stock-service had not processed when the wait ended.
    pub not_yet_processed: usize,
    /// Orders stock-service gave no usable answer for.
    pub failed: usize,
    /// The first of those answers, to say what went wrong.
    pub first_failure: Option<String>,
    /// How long the check took, waiting included.
    pub waited: Duration,
}

impl OrderOutcomes {
    /// Sums up one answer per order.
    pub fn tally(answers: impl IntoIterator<Item = Answer>, waited: Duration) -> Self {
        let mut outcomes = Self {
            waited,
            ..Self::default()
        };
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for answer in answers {
            outcomes.checked += 1;
            match answer {
                Answer::Applied => outcomes.applied += 1,
                Answer::Rejected(reason) => {
                    outcomes.rejected += 1;
                    *reasons.entry(reason).or_default() += 1;
                }
                Answer::NotYet => outcomes.not_yet_processed += 1,
                Answer::Failed(error) => {
                    outcomes.failed += 1;
                    outcomes.first_failure.get_or_insert(error);
                }
            }
        }
        outcomes.reasons = reasons.into_iter().collect();
        outcomes
            .reasons
            .sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
        outcomes
    }
}

/// `40 accepted orders: 10 applied, 30 rejected, 0 not yet processed (…)`, then the
/// most common rejection reasons, one a line.
impl fmt::Display for OrderOutcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} accepted orders: {} applied, {} rejected, {} not yet processed (asked stock-service for {:.1} s)",
            self.checked,
            self.applied,
            self.rejected,
            self.not_yet_processed,
            self.waited.as_secs_f64()
        )?;
        for (reason, count) in self.reasons.iter().take(REASONS_SHOWN) {
            write!(f, "\n  {count} rejected: {reason}")?;
        }
        let others: usize = self
            .reasons
            .iter()
            .skip(REASONS_SHOWN)
            .map(|(_, n)| n)
            .sum();
        if others > 0 {
            write!(f, "\n  {others} rejected for other reasons")?;
        }
        if let Some(error) = &self.first_failure {
            write!(f, "\n  {} without an answer, e.g. {error}", self.failed)?;
        }
        Ok(())
    }
}

/// stock-service could not be reached at all, so nothing was learnt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stock-service at {stock_url} did not answer ({reason}); order status not checked")]
pub struct StockUnreachable {
    /// The base URL asked.
    pub stock_url: String,
    /// Why: no connection, or no answer in time.
    pub reason: String,
}

/// Asks stock-service at `stock_url` (e.g. `http://localhost:8082`) about every order
/// in `order_ids`, [`CONCURRENCY`] at a time, and again about those not processed yet
/// until they are or `timeout` has passed. Fails, without waiting further, only when
/// stock-service cannot be reached; an order it answers an error for is counted.
pub async fn check_orders(
    client: &reqwest::Client,
    stock_url: &str,
    order_ids: &[String],
    timeout: Duration,
) -> Result<OrderOutcomes, StockUnreachable> {
    let started = Instant::now();
    let base = stock_url.trim_end_matches('/');
    let mut answers = Vec::with_capacity(order_ids.len());
    let mut pending: Vec<&str> = order_ids.iter().map(String::as_str).collect();
    loop {
        let mut round = futures::stream::iter(pending)
            .map(|order_id| async move { (order_id, ask(client, base, order_id).await) })
            .buffer_unordered(CONCURRENCY);
        let mut not_yet = Vec::new();
        while let Some((order_id, answer)) = round.next().await {
            match answer.map_err(|reason| StockUnreachable {
                stock_url: base.to_owned(),
                reason,
            })? {
                Answer::NotYet => not_yet.push(order_id),
                decided => answers.push(decided),
            }
        }
        pending = not_yet;
        if pending.is_empty() || started.elapsed() + RETRY_PAUSE > timeout {
            break;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    answers.extend(pending.iter().map(|_| Answer::NotYet));
    Ok(OrderOutcomes::tally(answers, started.elapsed()))
}

/// One `GET /api/orders/{orderId}`; `Err` with the reason when stock-service could not
/// be reached or did not answer in time.
async fn ask(client: &reqwest::Client, base: &str, order_id: &str) -> Result<Answer, String> {
    let request = client.get(format!("{base}/api/orders/{order_id}")).header(
        "traceparent",
        TraceContext::random().traceparent_unsampled(),
    );
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Err("no connection".to_owned()),
        Err(error) if error.is_timeout() => return Err("no answer in time".to_owned()),
        Err(error) => return Ok(Answer::Failed(error.to_string())),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) if error.is_timeout() => return Err("no answer in time".to_owned()),
        Err(error) => return Ok(Answer::Failed(error.to_string())),
    };
    Ok(answer(status, &body))
}

/// What an answer of stock-service's order API means. A `duplicate` (a
/// retry that got another order id than the attempt before it, from a
/// replica with another order-id key) counts as applied: the checkout was,
/// once, under the order id it names.
pub fn answer(status: reqwest::StatusCode, body: &[u8]) -> Answer {
    match status {
        reqwest::StatusCode::OK => match serde_json::from_slice::<OrderView>(body) {
            Ok(order) if order.status == "applied" => Answer::Applied,
            Ok(order) if order.status == ORDER_STATUS_DUPLICATE && order.duplicate_of.is_some() => {
                Answer::Applied
            }
            Ok(order) if order.status == "rejected" => Answer::Rejected(
                order
                    .reason
                    .unwrap_or_else(|| "no reason recorded".to_owned()),
            ),
            Ok(order) => Answer::Failed(format!("unknown order status {:?}", order.status)),
            Err(error) => Answer::Failed(format!("unreadable order: {error}")),
        },
        reqwest::StatusCode::NOT_FOUND => Answer::NotYet,
        status => Answer::Failed(match serde_json::from_slice::<ErrorBody>(body) {
            Ok(body) => format!(
                "{} {}: {}",
                status.as_u16(),
                body.error.code,
                body.error.message
            ),
            Err(_) => status.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(reason: &str) -> Answer {
        Answer::Rejected(reason.to_owned())
    }

    #[test]
    fn the_summary_counts_each_decision_and_orders_reasons_by_frequency() {
        let out_of_1 = "insufficient stock for item 1: 1 requested, 0 available";
        let mut answers = vec![Answer::Applied; 3];
        answers.extend([
            rejected("unknown item 9"),
            rejected(out_of_1),
            rejected("b"),
            rejected(out_of_1),
            rejected("a"),
            rejected("c"),
            Answer::NotYet,
            Answer::Failed("500 internal: the stock database failed to answer".into()),
            Answer::Failed("another".into()),
        ]);

        let outcomes = OrderOutcomes::tally(answers, Duration::from_millis(1_250));

        assert_eq!(
            (
                outcomes.checked,
                outcomes.applied,
                outcomes.rejected,
                outcomes.not_yet_processed,
                outcomes.failed
            ),
            (12, 3, 6, 1, 2)
        );
        assert_eq!(outcomes.reasons[0], (out_of_1.to_owned(), 2));
        let ties: Vec<&str> = outcomes.reasons[1..]
            .iter()
            .map(|(reason, _)| reason.as_str())
            .collect();
        assert_eq!(ties, ["a", "b", "c", "unknown item 9"], "ties by text");
        assert_eq!(
            outcomes.to_string(),
            "12 accepted orders: 3 applied, 6 rejected, 1 not yet processed (asked stock-service for 1.2 s)\n  \
             2 rejected: insufficient stock for item 1: 1 requested, 0 available\n  \
             1 rejected: a\n  \
             1 rejected: b\n  \
             2 rejected for other reasons\n  \
             2 without an answer, e.g. 500 internal: the stock database failed to answer"
        );
    }

    #[test]
    fn all_applied_is_one_line() {
        let outcomes = OrderOutcomes::tally(vec![Answer::Applied; 5], Duration::ZERO);
        assert_eq!(
            outcomes.to_string(),
            "5 accepted orders: 5 applied, 0 rejected, 0 not yet processed (asked stock-service for 0.0 s)"
        );
    }

    #[test]
    fn answers_decode_stock_services_contract() {
        use reqwest::StatusCode;
        let order = |status: &str, reason: &str| {
            format!(
                r#"{{"orderId":"0b9c5f4e-8f3a-4c57-9d2e-1f0a2b3c4d5e","status":"{status}","reason":{reason},"totalAmount":100,"processedAt":1700000000000}}"#
            )
        };
        assert_eq!(
            answer(StatusCode::OK, order("applied", "null").as_bytes()),
            Answer::Applied
        );
        assert_eq!(
            answer(
                StatusCode::OK,
                order("rejected", r#""unknown item 9""#).as_bytes()
            ),
            rejected("unknown item 9")
        );
        let duplicate = r#"{"orderId":"0b9c5f4e-8f3a-4c57-9d2e-1f0a2b3c4d5e","status":"duplicate","reason":"duplicate of order 1b9c5f4e-8f3a-4c57-9d2e-1f0a2b3c4d5e","totalAmount":100,"processedAt":1700000000000,"duplicateOf":"1b9c5f4e-8f3a-4c57-9d2e-1f0a2b3c4d5e"}"#;
        assert_eq!(
            answer(StatusCode::OK, duplicate.as_bytes()),
            Answer::Applied
        );
        assert!(matches!(
            answer(StatusCode::OK, order("pending", "null").as_bytes()),
            Answer::Failed(error) if error == r#"unknown order status "pending""#
        ));
        let not_found =
            br#"{"error":{"code":"not_found","message":"order x has not been processed"}}"#;
        assert_eq!(answer(StatusCode::NOT_FOUND, not_found), Answer::NotYet);
        assert_eq!(
            answer(
                StatusCode::BAD_REQUEST,
                br#"{"error":{"code":"bad_request","message":"orderId must be a UUID, got \"x\""}}"#
            ),
            Answer::Failed(r#"400 bad_request: orderId must be a UUID, got "x""#.into())
        );
        assert_eq!(
            answer(StatusCode::BAD_GATEWAY, b"<html>"),
            Answer::Failed("502 Bad Gateway".into())
        );
        assert!(matches!(answer(StatusCode::OK, b"{}"), Answer::Failed(_)));
    }
}
