//! The token signing keys.
use super::*;

/// A token signing key row: public PEM and the encrypted private key.
#[derive(Clone)]
pub struct SigningKeyRow {
    pub id: String,
    pub algorithm: String,
    pub public_key: String,
    pub private_key_enc: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub async fn list_signing_keys(db: &impl ConnectionTrait) -> Result<Vec<SigningKeyRow>> {
    Ok(newest_first(signing_key::Entity::find())
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(signing_key_row)
        .collect())
}

/// Signing keys newest first (by creation, then id).
fn newest_first(q: sea_orm::Select<signing_key::Entity>) -> sea_orm::Select<signing_key::Entity> {
    q.order_by(signing_key::Column::CreatedAt, Order::Desc)
        .order_by(signing_key::Column::Id, Order::Desc)
}

fn signing_key_row(m: signing_key::Model) -> SigningKeyRow {
    SigningKeyRow {
        id: m.id,
        algorithm: m.algorithm,
        public_key: m.public_key,
        private_key_enc: m.private_key_enc,
        created_at: m.created_at.to_utc(),
    }
}

pub async fn insert_signing_key(db: &impl ConnectionTrait, k: &SigningKeyRow) -> Result<()> {
    signing_key::Entity::insert(signing_key::ActiveModel {
        id: Set(k.id.clone()),
        algorithm: Set(k.algorithm.clone()),
        public_key: Set(k.public_key.clone()),
        private_key_enc: Set(k.private_key_enc.clone()),
        created_at: Set(k.created_at.fixed_offset()),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// A signing key's public facts, without its encrypted private key: what the JWKS refresh
/// reads every second.
#[derive(Debug, Clone)]
pub struct SigningKeyPublic {
    pub id: String,
    pub public_key: String,
    pub created_at: DateTime<Utc>,
}

/// Newest first, as [`list_signing_keys`].
pub async fn list_signing_key_publics(db: &impl ConnectionTrait) -> Result<Vec<SigningKeyPublic>> {
    let rows: Vec<(String, String, sea_orm::prelude::DateTimeWithTimeZone)> =
        newest_first(signing_key::Entity::find())
            .select_only()
            .column(signing_key::Column::Id)
            .column(signing_key::Column::PublicKey)
            .column(signing_key::Column::CreatedAt)
            .into_tuple()
            .all(db)
            .await
            .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, public_key, created_at)| SigningKeyPublic {
            id,
            public_key,
            created_at: created_at.to_utc(),
        })
        .collect())
}

pub async fn find_signing_key(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<SigningKeyRow>> {
    Ok(signing_key::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(db_err)?
        .map(signing_key_row))
}

/// Replaces a signing key's encrypted private key, if it still is `old` (another process may
/// have replaced it first, or the key may have been dropped). True when this call replaced it.
pub async fn reseal_signing_key(
    db: &impl ConnectionTrait,
    id: &str,
    old: &[u8],
    new: &[u8],
) -> Result<bool> {
    let res = signing_key::Entity::update_many()
        .col_expr(
            signing_key::Column::PrivateKeyEnc,
            Expr::value(new.to_vec()),
        )
        .filter(signing_key::Column::Id.eq(id))
        .filter(signing_key::Column::PrivateKeyEnc.eq(old.to_vec()))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(res.rows_affected == 1)
}

/// Deletes every signing key but `keep`; returns the ids deleted.
pub async fn delete_signing_keys_except(
    db: &impl ConnectionTrait,
    keep: &str,
) -> Result<Vec<String>> {
    let gone: Vec<String> = newest_first(signing_key::Entity::find())
        .select_only()
        .column(signing_key::Column::Id)
        .filter(signing_key::Column::Id.ne(keep))
        .into_tuple()
        .all(db)
        .await
        .map_err(db_err)?;
    signing_key::Entity::delete_many()
        .filter(signing_key::Column::Id.ne(keep))
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(gone)
}
