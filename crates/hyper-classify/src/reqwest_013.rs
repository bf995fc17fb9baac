//!
//! ```
//! let client = reqwest_013::Client::builder()
//!     .retry(hyper_classify::reqwest_013::for_host("api.example.com"))
//!     .build()
//!     .unwrap();
//! # drop(client);
//! ```

reqwest_retries!(reqwest_013, reqwest_013);
