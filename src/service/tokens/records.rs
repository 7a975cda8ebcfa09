//! Token records: every access token issued is on record (by hash) before its grant answers.
use crate::{
    domain::model::AccessToken,
    error::{Error, Result},
    storage::repo,
};

type Pending = (AccessToken, tokio::sync::oneshot::Sender<Result<()>>);

/// Group commit for token records: grants queue their record and wait; one writer inserts
/// whatever has queued up (up to 256) in one transaction and then answers each grant. Every
/// token is still on record before its grant answers; the database sees one commit per batch
/// instead of one per token.
#[derive(Clone)]
pub struct TokenRecords {
    queue: tokio::sync::mpsc::Sender<Pending>,
}

impl std::fmt::Debug for TokenRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenRecords")
    }
}

const RECORD_BATCH: usize = 256;

impl TokenRecords {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn start(db: crate::storage::Db) -> Self {
        let (queue, mut pending) = tokio::sync::mpsc::channel::<Pending>(4 * RECORD_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(RECORD_BATCH);
            while pending.recv_many(&mut batch, RECORD_BATCH).await > 0 {
                let (tokens, replies): (Vec<AccessToken>, Vec<_>) = batch.drain(..).unzip();
                let written = write_batch(&db, &tokens).await;
                // One log line per failed batch, with its cause.
                if let Some(Err(e)) = written
                    .iter()
                    .find(|r| matches!(r, Err(e) if !refused_for_its_key(e)))
                {
                    tracing::error!(error_id = e.id, cause = %e.cause_chain(), "recording access tokens failed");
                }
                for (reply, result) in replies.into_iter().zip(written) {
                    let _ = reply.send(result);
                }
            }
        });
        TokenRecords { queue }
    }

    pub async fn record(&self, token: AccessToken) -> Result<()> {
        let stopped = || Error::unavailable("TOKEN-Rec01", "the token writer has stopped");
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue
            .send((token, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// A token whose key or user was removed while it was being issued: the removal won.
pub(super) const RECORD_GONE: &str = "STORE-Fk001";

/// A token refused because its key or user was removed, or its key disabled, meanwhile: the
/// change won, and only the tokens of that key or user fail.
fn refused_for_its_key(e: &Error) -> bool {
    e.id == RECORD_GONE || e.id == repo::KEY_DISABLED
}

/// Writes a batch in one transaction, and each token's result. When the batch fails because a
/// key or user was removed meanwhile, the tokens are written one by one, so only those whose
/// key or user is gone fail.
async fn write_batch(db: &crate::storage::Db, tokens: &[AccessToken]) -> Vec<Result<()>> {
    match write_tokens(db, tokens).await {
        Ok(()) => tokens.iter().map(|_| Ok(())).collect(),
        Err(e) if refused_for_its_key(&e) && tokens.len() > 1 => {
            let mut results = Vec::with_capacity(tokens.len());
            for token in tokens {
                results.push(write_tokens(db, std::slice::from_ref(token)).await);
            }
            results
        }
        Err(e) => {
            let copies: Vec<Result<()>> = (1..tokens.len())
                .map(|_| Err(Error::new(e.kind, e.id, e.message.clone())))
                .collect();
            std::iter::once(Err(e)).chain(copies).collect()
        }
    }
}

async fn write_tokens(db: &crate::storage::Db, tokens: &[AccessToken]) -> Result<()> {
    repo::record_access_tokens(db, tokens).await
}
