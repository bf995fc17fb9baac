//! [`ClassifyPolicy`] as a tower 0.4 retry `Policy`, for the tower of the
//! hyper 0.14 generation (feature `tower-04`).

use std::error::Error;
use std::future::Future;
use std::pin::Pin;

use crate::{ClassifyPolicy, Replay};

impl<R, Req, Res, E> tower_04::retry::Policy<Req, Res, E> for ClassifyPolicy<R>
where
    R: Replay<Req> + Send + 'static,
    E: Error + 'static,
{
    type Future = Pin<Box<dyn Future<Output = Self> + Send>>;

    fn retry(&self, req: &Req, result: Result<&Res, &E>) -> Option<Self::Future> {
        let Err(err) = result else {
            self.policy().record_success();
            return None;
        };
        // tower 0.4 retries with the policy the future returns: this one,
        // with the request's state.
        let mut next = self.clone();
        let delay = next.retry_after(req, err)?;
        Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            next
        }))
    }

    fn clone_request(&self, req: &Req) -> Option<Req> {
        self.copy_request(req)
    }
}
