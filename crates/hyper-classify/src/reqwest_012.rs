//!
//! ```
//! let client = reqwest_012::Client::builder()
//!     .retry(hyper_classify::reqwest_012::for_host("api.example.com"))
//!     .build()
//!     .unwrap();
//! # drop(client);
//! ```

reqwest_retries!(reqwest_012, reqwest_012);
