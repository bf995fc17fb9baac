//! What [`reqwest_012`](crate::reqwest_012) and
//! [`reqwest_013`](crate::reqwest_013) share: reqwest's `retry` API is the
//! same in both majors, so the rule is written once and each module is the
//! macro below, named for its reqwest.

use std::error::Error;

use crate::{Pace, RequestBody};

/// The rule both modules' `permits_retry_with_body` apply. `http::Method`
/// is the one type reqwest 0.12 and 0.13 share, as both are on http 1.
pub(crate) fn permits(
    idempotent: bool,
    error: Option<&(dyn Error + 'static)>,
    body: RequestBody,
) -> bool {
    let Some(error) = error else {
        return false;
    };
    let verdict = crate::classify(error).for_body(body);
    verdict.pace() != Pace::Throttled && verdict.permits_retry_as_sent(idempotent)
}

/// The module docs of a reqwest major's module: `$major` is "0.12" or "0.13".
macro_rules! module_docs {
    ($major:literal) => {
        concat!(
            "A classifier for reqwest ",
            $major,
            "'s retries (`reqwest::retry`), answered from the verdict with the \
             safety rules of this crate.

reqwest's own check for a peer's `GOAWAY(NO_ERROR)` and `REFUSED_STREAM`
is private, and a policy with a classifier of its own replaces it. This
one retries what the verdict permits:

- a request the server never processed (`REFUSED_STREAM` from the peer,
  a refused connect, a request hyper handed back unsent), whatever its
  method;
- one it may have processed (a peer's `GOAWAY`, a lost connection), only
  if its method is idempotent. reqwest does not show a classifier the
  request's body, so the verdict cannot be narrowed by it
  ([`Verdict::for_body`](crate::Verdict::for_body)): a `GOAWAY` refusal
  of a POST is not retried here. Use `permits_retry_with_body` in a
  classifier of your own where you know the body;
- nothing throttled (`ENHANCE_YOUR_CALM`): reqwest retries at once, with
  no backoff, and an immediate retry would add to the overload;
- nothing a peer refused for wanting HTTP/1.1 (`HTTP_1_1_REQUIRED`):
  reqwest's retry goes out over HTTP/2 again;
- no response: statuses are the caller's to judge.

reqwest's retry budget (20 % extra load by default) and its limit of
retries per request stay in force."
        )
    };
}

/// The items of a reqwest major's module. `$module` is the module's name
/// and `$reqwest` the dependency's, for the examples.
macro_rules! reqwest_retries {
    ($module:ident, $reqwest:ident) => {
        use std::error::Error;

        use $reqwest::retry::Builder;
        use $reqwest::Method;

        use $crate::RequestBody;

        #[doc = concat!(
                    "A retry policy for requests to `host`, classified by this crate.\n\n",
                    "```\n",
                    "let policy = hyper_classify::", stringify!($module),
                    "::for_host(\"api.example.com\")\n",
                    "    .max_retries_per_request(3);\n",
                    "let client = ", stringify!($reqwest),
                    "::Client::builder().retry(policy).build().unwrap();\n",
                    "# drop(client);\n",
                    "```"
                )]
        pub fn for_host<S>(host: S) -> Builder
        where
            S: for<'a> PartialEq<&'a str> + Send + Sync + 'static,
        {
            classify($reqwest::retry::for_host(host))
        }

        #[doc = concat!(
                    "`builder` with this crate's classifier (replacing any it had).\n\n",
                    "```\n",
                    "let policy = hyper_classify::", stringify!($module), "::classify(\n",
                    "    ", stringify!($reqwest),
                    "::retry::for_host(\"api.example.com\").max_extra_load(0.5),\n",
                    ");\n",
                    "# drop(policy);\n",
                    "```"
                )]
        pub fn classify(builder: Builder) -> Builder {
            builder.classify_fn(|attempt| {
                if permits_retry(attempt.method(), attempt.error()) {
                    attempt.retryable()
                } else {
                    attempt.success()
                }
            })
        }

        #[doc = concat!(
                    "Whether a request of `method` that ended in `error` may be retried at\n",
                    "once: the rule [`classify`] applies, for a classifier of your own\n",
                    "(`classify_fn(|attempt| …)`). `None` (a response) is never retried.\n\n",
                    "```\n",
                    "use ", stringify!($reqwest), "::Method;\n\n",
                    "let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);\n",
                    "assert!(hyper_classify::", stringify!($module),
                    "::permits_retry(&Method::POST, Some(&refused)));\n",
                    "assert!(!hyper_classify::", stringify!($module),
                    "::permits_retry(&Method::GET, None));\n",
                    "```"
                )]
        pub fn permits_retry(method: &Method, error: Option<&(dyn Error + 'static)>) -> bool {
            // Unknown is the cautious answer: see `RequestBody::Empty`.
            permits_retry_with_body(method, error, RequestBody::Empty)
        }

        /// [`permits_retry`] for a request whose body was as `body` when it
        /// was sent: a peer's `GOAWAY` that failed a request with a body may
        /// be retried whatever its method, since that body never reached
        /// the server.
        pub fn permits_retry_with_body(
            method: &Method,
            error: Option<&(dyn Error + 'static)>,
            body: RequestBody,
        ) -> bool {
            $crate::reqwest_retries::permits(method.is_idempotent(), error, body)
        }
    };
}
