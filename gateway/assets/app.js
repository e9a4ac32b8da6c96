/* Placeholder: replaced by the built storefront bundle. */
