//! What every gRPC handler takes from the edge of a call, in one place: the caller's
//! credentials, the v2 caller, times, and the v2 listing's shared parts (id and timestamp
//! filters, the window, the pagination answer). Handlers use these and never each other.
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use tonic::{Request, Status};

use super::pgv::{defined, required, runes};
use crate::{
    domain::{
        list::{Compare, Page, v2_window},
        model::User,
    },
    error::{Error, Kind, Result},
    proto::{
        wkt::Timestamp,
        zitadel::{filter::v2 as filter_pb, object::v2 as object_pb},
    },
    service::{Services, auth::Credentials, dpop::HttpTarget},
};

/// The header naming the org a v1 call acts in.
pub const ORG_HEADER: &str = "x-zitadel-orgid";

/// What a call says about its caller: `authorization`, `x-zitadel-orgid`, the peer address.
pub fn credentials<T>(req: &Request<T>) -> Credentials {
    let md = req.metadata();
    let text = |name: &str| {
        md.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Credentials {
        authorization: text("authorization"),
        org_id: text(ORG_HEADER),
        dpop: md
            .get_all("dpop")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect(),
        target: req.extensions().get::<HttpTarget>().cloned(),
        peer: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    }
}

/// The caller of a v2 RPC. Every unauthenticated answer carries v2's id, AUTH-7fs1e.
pub async fn caller<T>(svc: &Services, req: &Request<T>) -> Result<User, Status> {
    svc.caller(&credentials(req)).await.map_err(|mut e| {
        if e.kind == Kind::Unauthenticated {
            // v2's id; the challenge (and DPoP's nonce) stays.
            e.id = "AUTH-7fs1e";
        }
        Status::from(e)
    })
}

pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
    Some(t.into())
}

pub fn time(t: &Timestamp) -> Result<chrono::DateTime<chrono::Utc>, Status> {
    t.to_datetime().ok_or_else(|| {
        Status::from(Error::validation(
            "the timestamp is outside the supported range",
        ))
    })
}

/// A v2 id filter's id, within its field rule (`min` runes at least).
pub fn id_filter(message: &str, field: &str, id: &str, min: usize) -> Result<String, Status> {
    runes(message, field, id, min, 200)?;
    Ok(id.to_owned())
}

/// A v2 timestamp filter: its method and time.
pub fn timestamp_filter(
    f: &filter_pb::TimestampFilter,
) -> Result<(Compare, chrono::DateTime<chrono::Utc>), Status> {
    use filter_pb::TimestampFilterMethod as M;
    let how = match defined::<M>("TimestampFilter", "Method", f.method)? {
        M::Equals => Compare::Equals,
        M::After => Compare::After,
        M::AfterOrEquals => Compare::AfterOrEquals,
        M::Before => Compare::Before,
        M::BeforeOrEquals => Compare::BeforeOrEquals,
    };
    let at = time(required("TimestampFilter", "Timestamp", &f.timestamp)?)?;
    Ok((how, at))
}

/// A v2 listing's window from its pagination request.
pub fn window(p: Option<filter_pb::PaginationRequest>) -> Result<Page, Status> {
    let p = p.unwrap_or_default();
    Ok(v2_window(p.offset, p.limit, p.asc)?)
}

/// A v2 listing's pagination answer.
pub fn pagination(total: u64, applied_limit: u64) -> Option<filter_pb::PaginationResponse> {
    Some(filter_pb::PaginationResponse {
        total_result: total,
        applied_limit,
    })
}

/// v2's object details of a change.
pub fn changed(details: &crate::domain::model::Details) -> Option<object_pb::Details> {
    Some(object_pb::Details {
        sequence: details.sequence,
        change_date: details.changed.map(Into::into),
        resource_owner: details.resource_owner.clone(),
        creation_date: None,
    })
}
