//! Where new RSA key pairs come from. The services ask a [`KeyPairSource`]; today it
//! generates each key on a blocking thread, and a pool of pre-generated keys can take its
//! place without the services noticing.
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::Semaphore;

use crate::{
    domain::keypair::{MIN_RSA_BITS, PrivateKey},
    error::{Error, Result},
};

/// The largest modulus generated keys may have: past it, generation takes seconds and every
/// signature check of the key gets slower for nothing.
pub const MAX_GENERATED_BITS: usize = 4096;

#[async_trait::async_trait]
pub trait KeyPairSource: Send + Sync {
    async fn next_key(&self) -> Result<PrivateKey>;
}

/// Generates a fresh key for every request, off the async runtime: at most one generation
/// per core at a time, and at most `queue` callers waiting; beyond that, UNAVAILABLE at once
/// (a burst of AddMachineKey calls cannot take every blocking thread or pile up without end).
#[derive(Debug, Clone)]
pub struct FreshKeys {
    bits: usize,
    workers: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl FreshKeys {
    pub fn new(bits: usize, queue: usize) -> Result<Self> {
        if !(MIN_RSA_BITS..=MAX_GENERATED_BITS).contains(&bits) {
            return Err(Error::invalid_argument(
                "CONFIG-Bits1",
                format!("key size {bits} is outside {MIN_RSA_BITS}..={MAX_GENERATED_BITS} bits"),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(FreshKeys {
            bits,
            workers: Arc::new(Semaphore::new(cores)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue: queue.max(1),
        })
    }
}

/// Counts a waiting caller for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait::async_trait]
impl KeyPairSource for FreshKeys {
    async fn next_key(&self) -> Result<PrivateKey> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::unavailable(
                "KEY-Busy01",
                "too many keys are being generated right now; retry shortly",
            )
            .retry_after(1));
        }
        let waiting = Waiting(&self.waiting);
        let _worker = self.workers.acquire().await.map_err(|e| {
            Error::internal("KEY-Gen03", "key generation is shut down").with_source(e)
        })?;
        drop(waiting);
        let bits = self.bits;
        tokio::task::spawn_blocking(move || PrivateKey::generate(bits))
            .await
            .map_err(|e| {
                Error::internal("KEY-Gen01", "key generation was interrupted").with_source(e)
            })?
            .map_err(|e| Error::internal("KEY-Gen02", "key generation failed").with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sizes_are_bounded() {
        assert!(FreshKeys::new(1024, 4).is_err());
        assert!(FreshKeys::new(8192, 4).is_err());
        assert!(FreshKeys::new(2048, 4).is_ok());
        assert!(FreshKeys::new(4096, 4).is_ok());
    }
}
