//! Time limits on futures, with the runtime's timers (there is no tokio in a Worker).

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::Delay;

/// `Err(TimedOut)` if `future` is not ready within `ms`.
pub async fn within<F: Future>(ms: u32, future: F) -> Result<F::Output, TimedOut> {
    let future = std::pin::pin!(future);
    let delay = std::pin::pin!(Delay::from(Duration::from_millis(u64::from(ms))));
    match select(future, delay).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(TimedOut),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;
