//! Token records: every access token issued is on record (by hash) before its grant answers.
use chrono::{DateTime, Utc};

use crate::{
    domain::model::AccessToken,
    error::{Error, Result},
    service::batch::{self, GroupCommit},
    storage::repo,
};

/// Group commit for token records (see [`crate::service::batch`]): a grant queues its record
/// and waits; every token is on record before its grant answers, and the database sees one
/// commit per batch instead of one per token.
#[derive(Clone, Debug)]
pub struct TokenRecords {
    writer: GroupCommit<AccessToken, ()>,
}

const RECORD_BATCH: usize = 256;

impl TokenRecords {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn start(db: crate::storage::Db) -> Self {
        let in_flight = batch::in_flight(&db);
        let writer = GroupCommit::start(RECORD_BATCH, in_flight, "TOKEN-Rec01", move |tokens| {
            let db = db.clone();
            async move {
                let written = write_batch(&db, &tokens).await;
                // One log line per failed batch, with its cause.
                if let Some(Err(e)) = written
                    .iter()
                    .find(|r| matches!(r, Err(e) if !refused_for_its_key(e)))
                {
                    tracing::error!(error_id = e.id, cause = %e.cause_chain(), "recording access tokens failed");
                }
                written
            }
        });
        TokenRecords { writer }
    }

    pub async fn record(&self, token: AccessToken) -> Result<()> {
        self.writer.submit(token).await
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

/// Spent one-time ids (assertions' and DPoP proofs' `jti`s), group-committed: a caller queues
/// its id and learns whether it was new once its batch is in the database — the store every
/// process shares, so a replay is refused wherever it arrives.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    writer: GroupCommit<(String, DateTime<Utc>), bool>,
}

const SPEND_BATCH: usize = 256;

impl ReplayGuard {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn start(db: crate::storage::Db) -> Self {
        let in_flight = batch::in_flight(&db);
        let writer = GroupCommit::start(SPEND_BATCH, in_flight, "TOKEN-Jti01", move |ids| {
            let db = db.clone();
            async move {
                match repo::remember_assertions(&db, &ids).await {
                    Ok(new) => new.into_iter().map(Ok).collect(),
                    Err(e) => {
                        tracing::error!(error_id = e.id, cause = %e.cause_chain(), "remembering spent ids failed");
                        ids.iter()
                            .map(|_| Err(Error::new(e.kind, e.id, e.message.clone())))
                            .collect()
                    }
                }
            }
        });
        ReplayGuard { writer }
    }

    /// Remembers `id` until `until`: true the first time, false for a replay.
    pub async fn spend(&self, id: String, until: DateTime<Utc>) -> Result<bool> {
        self.writer.submit((id, until)).await
    }
}
