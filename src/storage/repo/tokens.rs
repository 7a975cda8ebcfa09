//! Access tokens and remembered assertion ids.
use super::*;

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

/// A JSON array of strings as stored; anything else reads as empty (never as a wider grant).
fn from_json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Records access tokens, several in one statement; call it in a transaction. Each record
/// references its user and its key or trust (foreign keys, cascade): a token whose key or user was
/// removed meanwhile is refused here (`STORE-Fk001`), and a removal deletes the records committed
/// before it, so no token outlives its key. A token whose key is disabled is refused too
/// (`STORE-Dis01`), and disabling deletes the records committed before it.
///
/// On PostgreSQL and MySQL their users are share-locked first, then their keys. A removal of
/// the user or of a key holds the user row, then deletes keys (and so tokens) and the user; the
/// insert's foreign key checks lock the user and then the key (InnoDB even inserts the row
/// before it checks), so without the user locked first a grant racing a removal would
/// deadlock. Locked first, the grant simply waits for the removal, or the removal for it. The
/// key's share lock makes its enabled state hold until the insert commits; a disable (which
/// holds the user, then updates the key) waits for it, then deletes what it inserted.
///
/// SQLite has one writer: the insert comes first and takes the write lock, so the state read
/// after it is the latest and cannot change before the commit.
pub async fn insert_access_tokens(db: &impl ConnectionTrait, tokens: &[AccessToken]) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<&str> = tokens
        .iter()
        .filter(|t| !t.via_trust)
        .map(|t| t.key_id.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
    if !sqlite {
        let mut users: Vec<&str> = tokens.iter().map(|t| t.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Id.is_in(users))
            .order_by(user::Column::Id, Order::Asc)
            .lock_shared()
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(db_err)?;
        if !keys.is_empty() {
            check_keys_enabled(db, &keys, true).await?;
        }
    }
    access_token::Entity::insert_many(tokens.iter().map(|t| access_token::ActiveModel {
        id: Set(t.id.clone()),
        token_hash: Set(t.token_hash.clone()),
        user_id: Set(t.user_id.clone()),
        org_id: Set(t.org_id.clone()),
        key_id: Set((!t.via_trust).then(|| t.key_id.clone())),
        trust_id: Set(t.via_trust.then(|| t.key_id.clone())),
        scopes: Set(json_list(&t.scopes)),
        audience: Set(json_list(&t.audience)),
        projects: Set(json_list(&t.projects)),
        expires_at: Set(t.expires_at.fixed_offset()),
        created_at: Set(t.created_at.fixed_offset()),
        dpop_jkt: Set(t.dpop_jkt.clone()),
    }))
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    if sqlite && !keys.is_empty() {
        check_keys_enabled(db, &keys, false).await?;
    }
    Ok(())
}

/// Refuses (`STORE-Dis01`) when one of `keys` is disabled; share-locks them all (sorted) if
/// `lock` — a locking read returns the latest committed state, after waiting for a writer that
/// holds the row. A key that is gone is left to the foreign key check.
async fn check_keys_enabled(db: &impl ConnectionTrait, keys: &[&str], lock: bool) -> Result<()> {
    let mut query = authn_key::Entity::find()
        .select_only()
        .column(authn_key::Column::Id)
        .column(authn_key::Column::DisabledAt)
        .filter(authn_key::Column::Id.is_in(keys.iter().copied()))
        .order_by(authn_key::Column::Id, Order::Asc);
    if lock {
        query = query.lock_shared();
    }
    let states = query
        .into_tuple::<(String, Option<chrono::DateTime<chrono::FixedOffset>>)>()
        .all(db)
        .await
        .map_err(db_err)?;
    if let Some((key, _)) = states.iter().find(|(_, disabled)| disabled.is_some()) {
        return Err(Error::failed_precondition(
            KEY_DISABLED,
            format!("key {key} was disabled while the token was being issued"),
        ));
    }
    Ok(())
}

/// The error id of a token refused because its key is disabled.
pub const KEY_DISABLED: &str = "STORE-Dis01";

/// Records access tokens in a transaction of their own (see [`insert_access_tokens`]).
pub async fn record_access_tokens(db: &crate::storage::Db, tokens: &[AccessToken]) -> Result<()> {
    use sea_orm::TransactionTrait;
    let tx = db.begin().await.map_err(db_err)?;
    insert_access_tokens(&tx, tokens).await?;
    tx.commit().await.map_err(db_err)
}

/// The access token recorded under `id` (its hash is the caller's to compare).
pub async fn find_access_token(db: &impl ConnectionTrait, id: &str) -> Result<Option<AccessToken>> {
    Ok(access_token::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(db_err)?
        .map(|m| AccessToken {
            id: m.id,
            token_hash: m.token_hash,
            user_id: m.user_id,
            org_id: m.org_id,
            via_trust: m.trust_id.is_some(),
            key_id: m.key_id.or(m.trust_id).unwrap_or_default(),
            scopes: from_json_list(&m.scopes),
            audience: from_json_list(&m.audience),
            projects: from_json_list(&m.projects),
            expires_at: m.expires_at.to_utc(),
            created_at: m.created_at.to_utc(),
            dpop_jkt: m.dpop_jkt,
        }))
}

/// Removes tokens and remembered assertion ids that expired before `before`; returns how
/// many rows went.
pub async fn purge_expired_tokens(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    let tokens = access_token::Entity::delete_many()
        .filter(access_token::Column::ExpiresAt.lt(before.fixed_offset()))
        .exec(db)
        .await
        .map_err(db_err)?;
    let assertions = used_assertion::Entity::delete_many()
        .filter(used_assertion::Column::ExpiresAt.lt(before.fixed_offset()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(tokens.rows_affected + assertions.rows_affected)
}

/// Remembers each id until its time, in one statement (one transaction on MySQL); answers for
/// each whether it was new — false for an id remembered before, by any process, or earlier in
/// `entries`. The database decides, atomically: of two processes spending one id at once,
/// exactly one is told it was new.
pub async fn remember_assertions(
    db: &crate::storage::Db,
    entries: &[(String, DateTime<Utc>)],
) -> Result<Vec<bool>> {
    use sea_orm::sea_query::{OnConflict, Query};
    use std::collections::HashSet;
    let mut first: HashSet<&str> = HashSet::with_capacity(entries.len());
    let firsts: Vec<bool> = entries.iter().map(|(id, _)| first.insert(id)).collect();
    // Sorted, so that concurrent batches take the rows' locks in one order.
    let mut unique: Vec<&(String, DateTime<Utc>)> = entries
        .iter()
        .zip(&firsts)
        .filter_map(|(e, f)| f.then_some(e))
        .collect();
    unique.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if unique.is_empty() {
        return Ok(firsts);
    }
    let insert = |rows: &[&(String, DateTime<Utc>)]| {
        let mut q = Query::insert();
        q.into_table(used_assertion::Entity).columns([
            used_assertion::Column::Id,
            used_assertion::Column::ExpiresAt,
        ]);
        for (id, until) in rows {
            q.values_panic([id.clone().into(), until.fixed_offset().into()]);
        }
        q
    };
    let backend = db.get_database_backend();
    let new: HashSet<String> = if backend == sea_orm::DbBackend::MySql {
        // MySQL has no RETURNING: one INSERT IGNORE per id (0 rows affected: seen before),
        // the batch in one transaction so it still costs one commit.
        use sea_orm::TransactionTrait;
        let tx = db.begin().await.map_err(db_err)?;
        let mut new = HashSet::with_capacity(unique.len());
        for row in &unique {
            let mut stmt = backend.build(&insert(std::slice::from_ref(row)));
            stmt.sql = stmt.sql.replacen("INSERT ", "INSERT IGNORE ", 1);
            if tx.execute_raw(stmt).await.map_err(db_err)?.rows_affected() == 1 {
                new.insert(row.0.clone());
            }
        }
        tx.commit().await.map_err(db_err)?;
        new
    } else {
        let mut q = insert(&unique);
        q.on_conflict(
            OnConflict::column(used_assertion::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .returning_col(used_assertion::Column::Id);
        db.query_all_raw(backend.build(&q))
            .await
            .map_err(db_err)?
            .iter()
            .map(|row| row.try_get::<String>("", "id").map_err(db_err))
            .collect::<Result<_>>()?
    };
    Ok(entries
        .iter()
        .zip(firsts)
        .map(|((id, _), first)| first && new.contains(id))
        .collect())
}

/// Deletes the record of the token `id` (a revocation); whether there was one.
pub async fn delete_access_token(db: &impl ConnectionTrait, id: &str) -> Result<bool> {
    let res = access_token::Entity::delete_many()
        .filter(access_token::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected > 0)
}
