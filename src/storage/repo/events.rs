//! The audit event log.
use super::*;

pub async fn append_event(db: &impl ConnectionTrait, e: NewEvent) -> Result<()> {
    let subject = crate::domain::events::Subject::of(e.aggregate_type, &e.aggregate_id, &e.payload);
    event::Entity::insert(event::ActiveModel {
        position: Default::default(),
        created_at: Set(e.created_at.fixed_offset()),
        org_id: Set(e.org_id),
        aggregate_type: Set(e.aggregate_type.into()),
        aggregate_id: Set(e.aggregate_id),
        aggregate_sequence: Set(e.aggregate_sequence as i64),
        event_type: Set(e.event_type.into()),
        actor: Set(e.actor),
        payload: Set(e.payload.to_string()),
        key_id: Set(subject.key_id),
        user_id: Set(subject.user_id),
        dispatched_at: Set(None),
    })
    .exec_without_returning(db)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Events of one aggregate, oldest first (for tests and audits).
pub async fn events_of(
    db: &impl ConnectionTrait,
    aggregate_id: &str,
) -> Result<Vec<(String, u64, String, String)>> {
    Ok(event::Entity::find()
        .filter(event::Column::AggregateId.eq(aggregate_id))
        .order_by(event::Column::Position, Order::Asc)
        .all(db)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|m| (m.event_type, u(m.aggregate_sequence), m.actor, m.payload))
        .collect())
}
