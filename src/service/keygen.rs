//! Where new RSA key pairs come from. The services ask a [`KeyPairSource`]; today it
//! generates each key on a blocking thread, and a pool of pre-generated keys can take its
//! place without the services noticing.
use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
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

    /// Keys ready to hand out and how many the source keeps ready (`None`: no pool).
    fn pool_level(&self) -> Option<(usize, usize)> {
        None
    }

    /// Keys generated since start (for metrics).
    fn generated(&self) -> u64;
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
    generated: Arc<AtomicU64>,
}

impl FreshKeys {
    pub fn new(bits: usize, queue: usize) -> Result<Self> {
        if !(MIN_RSA_BITS..=MAX_GENERATED_BITS).contains(&bits) || !bits.is_multiple_of(1024) {
            return Err(Error::invalid_argument(
                "CONFIG-Bits1",
                format!("key size {bits} is not one of 2048, 3072 or 4096 bits"),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(FreshKeys {
            bits,
            workers: Arc::new(Semaphore::new(cores)),
            waiting: Arc::new(AtomicUsize::new(0)),
            queue: queue.max(1),
            generated: Arc::default(),
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
    fn generated(&self) -> u64 {
        self.generated.load(Ordering::Relaxed)
    }

    async fn next_key(&self) -> Result<PrivateKey> {
        self.generate_unless(|| None).await
    }
}

impl FreshKeys {
    /// A fresh key, unless `ready` has one by the time a core is free for the generation.
    async fn generate_unless(
        &self,
        ready: impl Fn() -> Option<PrivateKey> + Send,
    ) -> Result<PrivateKey> {
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
        if let Some(key) = ready() {
            return Ok(key);
        }
        let bits = self.bits;
        let key = tokio::task::spawn_blocking(move || PrivateKey::generate(bits))
            .await
            .map_err(|e| {
                Error::internal("KEY-Gen01", "key generation was interrupted").with_source(e)
            })?
            .map_err(|e| Error::internal("KEY-Gen02", "key generation failed").with_source(e))?;
        self.generated.fetch_add(1, Ordering::Relaxed);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sizes_are_bounded() {
        assert!(FreshKeys::new(1024, 4).is_err());
        assert!(FreshKeys::new(8192, 4).is_err());
        assert!(FreshKeys::new(2500, 4).is_err());
        assert!(FreshKeys::new(3072, 4).is_ok());
        assert!(FreshKeys::new(2048, 4).is_ok());
        assert!(FreshKeys::new(4096, 4).is_ok());
    }
}

/// Pre-generated keys, kept in memory and handed out once each. Background threads (one per
/// worker) keep it filled at the lowest CPU priority, so refilling yields to request handling.
/// When it runs dry, a caller does not wait for those threads — under other load they may get
/// no CPU at all, and the caller would wait on whatever keeps the cores busy — but generates
/// its key itself at normal priority, as [`FreshKeys`] does (one generation per core, at most
/// `queue` callers waiting, UNAVAILABLE beyond), taking a pooled key instead if one is ready
/// by the time a core is free. Keys never touch disk before they are handed out; those still
/// in the pool at shutdown are dropped (and zeroized by their type).
pub struct KeyPool {
    shared: Arc<PoolShared>,
    fresh: FreshKeys,
}

struct PoolShared {
    keys: std::sync::Mutex<std::collections::VecDeque<PrivateKey>>,
    /// Workers wait on this while the pool is full.
    room: std::sync::Condvar,
    size: usize,
    stop: std::sync::atomic::AtomicBool,
    generated: AtomicU64,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("size", &self.shared.size)
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl KeyPool {
    /// Starts `workers` generator threads (0: one per core) filling a pool of `size` keys.
    pub fn start(bits: usize, size: usize, workers: usize, queue: usize) -> Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            workers
        };
        Self::with_threads(bits, size, workers, queue)
    }

    /// [`KeyPool::start`] with exactly `workers` generator threads.
    fn with_threads(bits: usize, size: usize, workers: usize, queue: usize) -> Result<Self> {
        let fresh = FreshKeys::new(bits, queue)?;
        let shared = Arc::new(PoolShared {
            keys: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(size)),
            room: std::sync::Condvar::new(),
            size: size.max(1),
            stop: std::sync::atomic::AtomicBool::new(false),
            generated: AtomicU64::new(0),
        });
        for i in 0..workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("keygen-{i}"))
                .spawn(move || fill(&shared, bits))
                .map_err(|e| {
                    Error::internal("KEY-Pool1", "cannot start a key generator thread")
                        .with_source(e)
                })?;
        }
        Ok(KeyPool { shared, fresh })
    }

    /// Keys ready right now.
    pub fn ready(&self) -> usize {
        self.shared
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn take(&self) -> Option<PrivateKey> {
        let key = self
            .shared
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        if key.is_some() {
            self.shared.room.notify_one();
        }
        key
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.room.notify_all();
    }
}

/// A generator thread: keeps the pool full until the pool is dropped.
fn fill(shared: &PoolShared, bits: usize) {
    lower_priority();
    loop {
        {
            let mut keys = shared.keys.lock().unwrap_or_else(|p| p.into_inner());
            while keys.len() >= shared.size && !shared.stop.load(Ordering::Acquire) {
                keys = shared.room.wait(keys).unwrap_or_else(|p| p.into_inner());
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        match PrivateKey::generate(bits) {
            Ok(key) => {
                shared.generated.fetch_add(1, Ordering::Relaxed);
                shared
                    .keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(key);
            }
            Err(e) => {
                tracing::error!(error = %e, "key generation failed in the pool");
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Gives this thread the lowest scheduling priority, so generation only uses CPU that request
/// handling leaves idle: `SCHED_IDLE`, which the kernel preempts at once when a normal thread
/// wakes up on its core (a nice-19 thread may finish its time slice first — milliseconds on
/// the request path under EEVDF), and nice 19 should the policy be refused.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; on Linux, PRIO_PROCESS with a thread id
    // changes that thread's nice value only, and sched_setscheduler with pid 0 reads `param`
    // (a live local) and changes the calling thread only.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::debug!("SCHED_IDLE refused; the key generators run at nice 19");
        }
    }
}

#[async_trait::async_trait]
impl KeyPairSource for KeyPool {
    fn pool_level(&self) -> Option<(usize, usize)> {
        Some((self.ready(), self.shared.size))
    }

    fn generated(&self) -> u64 {
        self.shared.generated.load(Ordering::Relaxed) + self.fresh.generated()
    }

    async fn next_key(&self) -> Result<PrivateKey> {
        if let Some(key) = self.take() {
            return Ok(key);
        }
        self.fresh.generate_unless(|| self.take()).await
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn generator_threads_yield_to_every_other_thread() {
        let (policy, nice) = std::thread::spawn(|| {
            lower_priority();
            // SAFETY: both calls take no pointers and ask about the calling thread only.
            unsafe {
                (
                    libc::sched_getscheduler(0),
                    libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as _),
                )
            }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        assert_eq!(nice, 19);
        // The caller's own priority is untouched.
        // SAFETY: as above.
        assert_ne!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
    }

    #[tokio::test]
    async fn the_pool_fills_hands_out_each_key_once_and_refills() {
        let pool = KeyPool::start(2048, 3, 1, 8).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let key = pool.next_key().await.unwrap();
            let pem = key.public_key().to_pkix_pem().unwrap();
            assert!(seen.insert(pem), "a key was handed out twice");
        }
        for _ in 0..200 {
            if pool.ready() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(pool.ready(), 3, "refilled to its size, not beyond");
    }

    #[tokio::test]
    async fn a_dry_pool_does_not_make_callers_wait_for_its_workers() {
        // No worker threads: nothing ever fills the pool, as when other load leaves its
        // idle-priority workers no CPU. Callers still get keys, generated for them.
        let pool = KeyPool::with_threads(2048, 4, 0, 8).unwrap();
        let (a, b) = tokio::join!(pool.next_key(), pool.next_key());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(
            a.public_key().to_pkix_pem().unwrap(),
            b.public_key().to_pkix_pem().unwrap()
        );
        assert_eq!(pool.ready(), 0);
        assert_eq!(
            pool.generated(),
            2,
            "the keys generated for callers are counted"
        );
    }
}
