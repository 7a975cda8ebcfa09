//! Where new RSA key pairs come from. The services ask a [`KeyPairSource`]; today it
//! generates each key on a blocking thread, and a pool of pre-generated keys can take its
//! place without the services noticing.
use crate::{
    domain::keypair::{MIN_RSA_BITS, PrivateKey},
    error::{Error, Result},
};

#[async_trait::async_trait]
pub trait KeyPairSource: Send + Sync {
    async fn next_key(&self) -> Result<PrivateKey>;
}

/// Generates a fresh key for every request, off the async runtime.
#[derive(Debug, Clone, Copy)]
pub struct FreshKeys {
    bits: usize,
}

impl FreshKeys {
    pub fn new(bits: usize) -> Result<Self> {
        if !(MIN_RSA_BITS..=8192).contains(&bits) {
            return Err(Error::invalid_argument(
                "CONFIG-Bits1",
                format!("key size {bits} is outside {MIN_RSA_BITS}..=8192 bits"),
            ));
        }
        Ok(FreshKeys { bits })
    }
}

#[async_trait::async_trait]
impl KeyPairSource for FreshKeys {
    async fn next_key(&self) -> Result<PrivateKey> {
        let bits = self.bits;
        tokio::task::spawn_blocking(move || PrivateKey::generate(bits))
            .await
            .map_err(|e| {
                Error::internal("KEY-Gen01", "key generation was interrupted").with_source(e)
            })?
            .map_err(|e| Error::internal("KEY-Gen02", "key generation failed").with_source(e))
    }
}
