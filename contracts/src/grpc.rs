//! The checkout gRPC contract: the code generated from `proto/checkout.proto`
//! (compiled by `protox` in `build.rs`, so no `protoc` is needed).
//!
//! The gateway is its client and checkout-service its server.

#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
mod generated {
    tonic::include_proto!("checkout");
}

pub use generated::*;

/// The encoded `FileDescriptorSet`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("checkout_descriptor");

/// The fully-qualified gRPC service name, as used in span names and `rpc.service`.
pub const SERVICE_NAME: &str = "checkout.Checkout";

/// The checkout method, as used in span names and `rpc.method`.
pub const DO_CHECKOUT: &str = "DoCheckout";

/// The catalog method, as used in span names and `rpc.method`.
pub const LIST_ITEMS: &str = "ListItems";
