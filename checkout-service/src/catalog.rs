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

/// The items on sale, by id: each with its price and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    items: BTreeMap<i32, Item>,
}

/// One item on sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// What a unit costs, in the catalog's currency units.
    pub price: i32,
    /// What it is called.
    pub name: String,
}

/// The names of items 1–4 when the setting gives none: the demo's shop.
const DEFAULT_NAMES: [(i32, &str); 4] = [
    (1, "Espresso cup"),
    (2, "Tea towel"),
    (3, "Notebook"),
    (4, "Desk lamp"),
];

/// The longest item name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The name of item `id` when the setting gives none: the demo's for items
/// 1–4, else `Item {id}`.
fn default_name(id: i32) -> String {
    DEFAULT_NAMES
        .iter()
        .find(|(known, _)| *known == id)
        .map_or_else(|| format!("Item {id}"), |(_, name)| (*name).to_owned())
}

impl Default for Catalog {
    /// Items 1–4, as in the original demo, with the demo's names.
    fn default() -> Self {
        Self {
            items: [(1, 100), (2, 250), (3, 399), (4, 1250)]
                .into_iter()
                .map(|(id, price)| {
                    let name = default_name(id);
                    (id, Item { price, name })
                })
                .collect(),
        }
    }
}

impl FromStr for Catalog {
    type Err = String;

    /// Parses `1=100,2=250:Tea towel`: item id = price, optionally `:` and
    /// a name (everything after the first `:`, trimmed; at most
    /// [`MAX_NAME_CHARS`] characters, no control characters, and no `,`,
    /// which separates items). An item without a name gets the demo's name
    /// for items 1–4, else `Item N`; so every `id=price` setting written
    /// before names existed still parses, to the same prices.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut items = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, rest) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected id=price or id=price:name, got {entry:?}"))?;
            let (price, name) = match rest.split_once(':') {
                Some((price, name)) => (price, Some(name.trim())),
                None => (rest, None),
            };
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
            let name = match name {
                None => default_name(id),
                Some(name) => {
                    if name.is_empty()
                        || name.chars().count() > MAX_NAME_CHARS
                        || name.chars().any(char::is_control)
                    {
                        return Err(format!(
                            "bad name in {entry:?}: 1 to {MAX_NAME_CHARS} characters, no control characters"
                        ));
                    }
                    name.to_owned()
                }
            };
            items.insert(id, Item { price, name });
        }
        if items.is_empty() {
            return Err("the catalog is empty".to_owned());
        }
        Ok(Self { items })
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
        self.items.get(&item).map(|item| item.price)
    }

    /// The items on sale with their ids, in ascending id.
    pub fn items(&self) -> impl Iterator<Item = (i32, &Item)> + '_ {
        self.items.iter().map(|(id, item)| (*id, item))
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

    #[test]
    fn names_are_optional_and_default_to_the_demos_or_item_n() {
        let catalog: Catalog = "1=10, 2=20:Blue mug, 7=3, 8=5: Tea: green "
            .parse()
            .unwrap();
        let names: Vec<(i32, &str, i32)> = catalog
            .items()
            .map(|(id, item)| (id, item.name.as_str(), item.price))
            .collect();
        assert_eq!(
            names,
            [
                (1, "Espresso cup", 10),
                (2, "Blue mug", 20),
                (7, "Item 7", 3),
                (8, "Tea: green", 5)
            ]
        );
        for bad in ["1=10:", "1=10:  ", "1=10:tab\there", "1=x:Mug"] {
            assert!(bad.parse::<Catalog>().is_err(), "{bad:?}");
        }
        let long = format!("1=10:{}", "n".repeat(MAX_NAME_CHARS + 1));
        assert!(long.parse::<Catalog>().is_err());
    }

    #[test]
    fn the_default_setting_is_the_default_catalog() {
        let parsed: Catalog = "1=100,2=250,3=399,4=1250".parse().unwrap();
        assert_eq!(parsed, Catalog::default());
    }
}
