//! Tests only: see `tests/`. hyper-classify inside the AWS SDK's runtime,
//! reqwest and tonic, with real errors from real sockets.
