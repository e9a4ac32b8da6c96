//! The checkout gRPC contract: the code generated from `proto/checkout.proto`.
//!
//! Both the gateway (client) and checkout-service (server) depend on this crate,
//! so the wire contract lives in exactly one place.
#![allow(missing_docs, clippy::all)] // generated code

tonic::include_proto!("checkout");

/// The encoded `FileDescriptorSet`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("checkout_descriptor");

/// The fully-qualified gRPC service name, as used in span names and `rpc.service`.
pub const SERVICE_NAME: &str = "checkout.Checkout";
