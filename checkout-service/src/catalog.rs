//! The catalog and order pricing: the domain of checkout-service.
//!
//! A request is turned into a [`PricedOrder`] or a [`CheckoutError`] here,
//! with no I/O, so every rule (what a valid cart is, what an item costs) has
//! one place and is tested on its own.

use std::{collections::BTreeMap, str::FromStr};

use contracts::{
    amqp::OrderLine,
    limits::{MAX_LINE_ITEMS, MAX_QUANTITY},
};

/// Prices by item id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    prices: BTreeMap<i32, i32>,
}

impl Default for Catalog {
    /// Items 1–4, as in the original demo.
    fn default() -> Self {
        Self {
            prices: BTreeMap::from([(1, 100), (2, 250), (3, 399), (4, 1250)]),
        }
    }
}

impl FromStr for Catalog {
    type Err = String;

    /// Parses `1=100,2=250`: item id = price.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut prices = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, price) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected id=price, got {entry:?}"))?;
            let id: i32 = id
                .trim()
                .parse()
                .map_err(|_| format!("bad item id in {entry:?}"))?;
            let price: i32 = price
                .trim()
                .parse()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("bad price in {entry:?}"))?;
            prices.insert(id, price);
        }
        if prices.is_empty() {
            return Err("the catalog is empty".to_owned());
        }
        Ok(Self { prices })
    }
}

/// Why a cart cannot be checked out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// No items at all.
    #[error("the cart is empty")]
    EmptyCart,
    /// A quantity below 1 or above [`MAX_QUANTITY`].
    #[error("quantity {quantity} of item {item} is out of range 1..={MAX_QUANTITY}")]
    BadQuantity {
        /// The item.
        item: i32,
        /// Its quantity.
        quantity: i32,
    },
    /// More than [`MAX_LINE_ITEMS`] lines.
    #[error("too many line items (at most {MAX_LINE_ITEMS})")]
    TooManyLines,
    /// An item the catalog does not sell.
    #[error("unknown item {0}")]
    UnknownItem(i32),
    /// The total does not fit the response's `int32 totalAmount`.
    #[error("the order total is too large")]
    TotalTooLarge,
}

/// A valid order with its price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedOrder {
    /// One line per distinct item, ordered by item id.
    pub lines: Vec<OrderLine>,
    /// Sum of price × quantity.
    pub total: i32,
}

impl Catalog {
    /// The price of `item`, if sold.
    pub fn price(&self, item: i32) -> Option<i32> {
        self.prices.get(&item).copied()
    }

    /// The item ids on sale.
    pub fn items(&self) -> impl Iterator<Item = i32> + '_ {
        self.prices.keys().copied()
    }

    /// Validates and prices a cart. Lines naming the same item are merged, so
    /// `[1, 1]` is one line of two units.
    pub fn price_order(
        &self,
        lines: impl IntoIterator<Item = OrderLine>,
    ) -> Result<PricedOrder, CheckoutError> {
        let mut merged: BTreeMap<i32, i32> = BTreeMap::new();
        for (index, line) in lines.into_iter().enumerate() {
            if index >= MAX_LINE_ITEMS {
                return Err(CheckoutError::TooManyLines);
            }
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                return Err(CheckoutError::BadQuantity {
                    item: line.id,
                    quantity: line.quantity,
                });
            }
            let quantity = merged.entry(line.id).or_default();
            *quantity = quantity.saturating_add(line.quantity);
            if *quantity > MAX_QUANTITY {
                return Err(CheckoutError::BadQuantity {
                    item: line.id,
                    quantity: *quantity,
                });
            }
        }
        if merged.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }
        if merged.len() > MAX_LINE_ITEMS {
            return Err(CheckoutError::TooManyLines);
        }
        let mut total: i32 = 0;
        for (&id, &quantity) in &merged {
            let price = self.price(id).ok_or(CheckoutError::UnknownItem(id))?;
            total = price
                .checked_mul(quantity)
                .and_then(|amount| total.checked_add(amount))
                .ok_or(CheckoutError::TotalTooLarge)?;
        }
        Ok(PricedOrder {
            lines: merged
                .into_iter()
                .map(|(id, quantity)| OrderLine { id, quantity })
                .collect(),
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i32, quantity: i32) -> OrderLine {
        OrderLine { id, quantity }
    }

    #[test]
    fn prices_and_merges_lines() {
        let order = Catalog::default()
            .price_order([line(1, 2), line(4, 1), line(1, 1)])
            .unwrap();
        assert_eq!(order.lines, vec![line(1, 3), line(4, 1)]);
        assert_eq!(order.total, 3 * 100 + 1250);
    }

    #[test]
    fn rejects_bad_carts() {
        let catalog = Catalog::default();
        assert_eq!(catalog.price_order([]), Err(CheckoutError::EmptyCart));
        assert!(matches!(
            catalog.price_order([line(1, 0)]),
            Err(CheckoutError::BadQuantity { .. })
        ));
        assert!(matches!(
            catalog.price_order([line(1, MAX_QUANTITY), line(1, 1)]),
            Err(CheckoutError::BadQuantity { .. })
        ));
        assert_eq!(
            catalog.price_order([line(9, 1)]),
            Err(CheckoutError::UnknownItem(9))
        );
        let expensive: Catalog = "1=2147483647".parse().unwrap();
        assert_eq!(
            expensive.price_order([line(1, 2)]),
            Err(CheckoutError::TotalTooLarge)
        );
    }

    #[test]
    fn parses_catalog_settings() {
        let catalog: Catalog = "1=10, 7=3".parse().unwrap();
        assert_eq!(catalog.price(7), Some(3));
        assert_eq!(catalog.price(2), None);
        assert!("1=x".parse::<Catalog>().is_err());
        assert!("1=-5".parse::<Catalog>().is_err());
        assert!("".parse::<Catalog>().is_err());
    }
}
