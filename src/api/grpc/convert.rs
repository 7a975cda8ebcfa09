//! Pure conversions between domain records and generated proto types.
use chrono::{DateTime, Utc};

use crate::{
    domain::{
        list::{MemberQuery, TextMatch, UserOrder, UserQuery},
        model::{App, AuthnKey, Details, Listed, MemberEntry, Org, Project, ReadDetails, User},
        validate,
    },
    error::Error,
    proto::{
        wkt::Timestamp,
        zitadel::{
            app as app_pb, authn, member as member_pb, org as org_pb, project as project_pb,
            user as user_pb, v1,
        },
    },
    service::listings::PageRequest,
};

pub fn details(d: &Details) -> v1::ObjectDetails {
    v1::ObjectDetails {
        sequence: d.sequence,
        creation_date: d.created.map(Into::into),
        change_date: d.changed.map(Into::into),
        resource_owner: d.resource_owner.clone(),
    }
}

pub fn key(k: &AuthnKey) -> authn::v1::Key {
    authn::v1::Key {
        id: k.id.clone(),
        details: Some(details(&k.details())),
        r#type: k.key_type,
        expiration_date: Some(k.expires_at.into()),
    }
}

pub fn list_details<T>(l: &Listed<T>) -> v1::ListDetails {
    v1::ListDetails {
        total_result: l.total,
        processed_sequence: l.processed_sequence,
        view_timestamp: Some(l.view_timestamp.into()),
    }
}

pub fn org(o: &Org) -> org_pb::v1::Org {
    org_pb::v1::Org {
        id: o.id.clone(),
        details: Some(details(&o.details())),
        state: org_pb::v1::OrgState::Active as i32,
        name: o.name.clone(),
        primary_domain: o.primary_domain.clone(),
    }
}

pub fn user(u: &User, org: &Org) -> user_pb::v1::User {
    let login_name = format!("{}@{}", u.user_name, org.primary_domain);
    user_pb::v1::User {
        id: u.id.clone(),
        details: Some(details(&u.details())),
        state: user_pb::v1::UserState::Active as i32,
        user_name: u.user_name.clone(),
        login_names: vec![login_name.clone()],
        preferred_login_name: login_name,
        r#type: Some(user_pb::v1::user::Type::Machine(user_pb::v1::Machine {
            name: u.name.clone(),
            description: u.description.clone(),
            has_secret: false,
            access_token_type: u.access_token_type as i32,
        })),
    }
}

/// A member of `org`. Members are users of the org itself (AddOrgMember takes no other), so
/// their login name is the user name at the org's primary domain, as [`user`] writes it.
pub fn member(m: &MemberEntry, org: &Org) -> member_pb::v1::Member {
    member_pb::v1::Member {
        user_id: m.user_id.clone(),
        details: Some(details(&m.details())),
        roles: m.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        preferred_login_name: format!("{}@{}", m.user_name, org.primary_domain),
        display_name: m.display_name.clone(),
        user_type: user_pb::v1::Type::Machine as i32,
        user_resource_owner: m.user_org_id.clone(),
        ..Default::default()
    }
}

pub fn project(p: &Project) -> project_pb::v1::Project {
    project_pb::v1::Project {
        id: p.id.clone(),
        details: Some(details(&p.details())),
        name: p.name.clone(),
        state: project_pb::v1::ProjectState::Active as i32,
        project_role_assertion: p.project_role_assertion,
        project_role_check: p.project_role_check,
        has_project_check: p.has_project_check,
        private_labeling_setting: p.private_labeling_setting,
    }
}

pub fn app(a: &App) -> app_pb::v1::App {
    app_pb::v1::App {
        id: a.id.clone(),
        details: Some(details(&a.details())),
        state: app_pb::v1::AppState::Active as i32,
        name: a.name.clone(),
        config: Some(app_pb::v1::app::Config::ApiConfig(app_pb::v1::ApiConfig {
            client_id: a.client_id.clone(),
            auth_method_type: a.auth_method as i32,
        })),
    }
}

/// A request timestamp; out-of-range values are the caller's error.
pub fn timestamp(
    field: &'static str,
    t: Option<Timestamp>,
) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        t.to_datetime().ok_or_else(|| {
            Error::invalid_argument(
                "VALIDATION-Time1",
                format!("{field} is not a valid timestamp"),
            )
        })
    })
    .transpose()
}

/// An enum field must hold one of its defined values.
pub fn page(q: Option<v1::ListQuery>) -> PageRequest {
    let q = q.unwrap_or_default();
    PageRequest {
        offset: q.offset,
        limit: q.limit,
        asc: q.asc,
    }
}

fn unsupported_query(what: &str) -> Error {
    Error::invalid_argument(
        "QUERY-Unsup1",
        format!("this {what} query kind is not supported here (supported: see docs/api.md)"),
    )
}

fn text_match(field: &'static str, value: String, method: i32) -> Result<TextMatch, Error> {
    TextMatch::from_method_number(value, method).ok_or_else(|| {
        Error::invalid_argument(
            "VALIDATION-Enum1",
            format!("{field}.method has no value {method}"),
        )
    })
}

/// ListUsers' sorting column: creation date (also when unspecified) or user name. The human
/// profile columns have nothing to sort machine users by, so they sort by creation date too.
pub fn user_order(column: i32) -> Result<UserOrder, Error> {
    use user_pb::v1::UserFieldName as F;
    Ok(match defined_enum::<F>("sorting_column", column)? {
        F::UserName => UserOrder::UserName,
        _ => UserOrder::CreationDate,
    })
}

/// ListUsers' queries (ANDed). A query of a kind this server does not declare arrives empty
/// and is refused rather than dropped, so a filter never silently widens a listing.
pub fn user_queries(queries: Vec<user_pb::v1::SearchQuery>) -> Result<Vec<UserQuery>, Error> {
    use user_pb::v1::{Type, search_query::Query};
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        match q.query {
            Some(Query::UserNameQuery(q)) => out.push(
                text_match("user_name_query", q.user_name, q.method).map(UserQuery::UserName)?,
            ),
            // Every stored user is a machine user: asking for machines filters nothing.
            Some(Query::TypeQuery(q)) => match defined_enum::<Type>("type_query.type", q.r#type)? {
                Type::Human => out.push(UserQuery::Nothing),
                Type::Machine | Type::Unspecified => {}
            },
            Some(Query::InUserIdsQuery(q)) => out.push(UserQuery::Ids(q.user_ids)),
            None => return Err(unsupported_query("user")),
        }
    }
    Ok(out)
}

/// ListOrgMembers' queries (ANDed). The name and email queries are checked as ZITADEL checks
/// them (at most 200 characters, a defined method) and then match nobody: every member here
/// is a machine user, which has no first name, last name or email. A query of no kind is
/// refused.
pub fn member_queries(queries: Vec<member_pb::v1::SearchQuery>) -> Result<Vec<MemberQuery>, Error> {
    use member_pb::v1::search_query::Query;
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let (query, field, value, method) = match q.query {
            Some(Query::UserIdQuery(q)) => {
                out.push(MemberQuery::UserId(q.user_id));
                continue;
            }
            Some(Query::FirstNameQuery(q)) => (
                "first_name_query",
                "first_name_query.first_name",
                q.first_name,
                q.method,
            ),
            Some(Query::LastNameQuery(q)) => (
                "last_name_query",
                "last_name_query.last_name",
                q.last_name,
                q.method,
            ),
            Some(Query::EmailQuery(q)) => ("email_query", "email_query.email", q.email, q.method),
            None => return Err(unsupported_query("member")),
        };
        validate::length(field, &value, 0, validate::NAME_MAX)?;
        text_match(query, value, method)?;
        out.push(MemberQuery::Nothing);
    }
    Ok(out)
}

/// Queries of objects whose only query is by name; a query without one is refused.
fn name_queries<Q>(
    queries: Vec<Q>,
    object: &str,
    name_query: fn(Q) -> Option<(String, i32)>,
) -> Result<Vec<TextMatch>, Error> {
    queries
        .into_iter()
        .map(|q| {
            let (name, method) = name_query(q).ok_or_else(|| unsupported_query(object))?;
            text_match("name_query", name, method)
        })
        .collect()
}

pub fn project_queries(
    queries: Vec<project_pb::v1::ProjectQuery>,
) -> Result<Vec<TextMatch>, Error> {
    use project_pb::v1::project_query::Query;
    name_queries(queries, "project", |q| {
        q.query.map(|Query::NameQuery(q)| (q.name, q.method))
    })
}

pub fn app_queries(queries: Vec<app_pb::v1::AppQuery>) -> Result<Vec<TextMatch>, Error> {
    use app_pb::v1::app_query::Query;
    name_queries(queries, "app", |q| {
        q.query.map(|Query::NameQuery(q)| (q.name, q.method))
    })
}

pub fn defined_enum<E: TryFrom<i32>>(field: &'static str, value: i32) -> Result<E, Error> {
    E::try_from(value).map_err(|_| {
        Error::invalid_argument("VALIDATION-Enum1", format!("{field} has no value {value}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn details_and_keys() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let d = details(&Details::added(3, at, "org1"));
        assert_eq!(d.sequence, 3);
        assert!(d.creation_date.is_some() && d.change_date.is_none());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["sequence"], "3");
        assert_eq!(json["creationDate"], "2026-11-22T10:00:00Z");
        assert_eq!(json["resourceOwner"], "org1");
    }

    #[test]
    fn bad_enum_and_timestamp() {
        assert!(defined_enum::<authn::v1::KeyType>("type", 7).is_err());
        assert!(defined_enum::<authn::v1::KeyType>("type", 1).is_ok());
        assert!(
            timestamp(
                "expiration_date",
                Some(Timestamp {
                    seconds: 0,
                    nanos: -5
                })
            )
            .is_err()
        );
        assert_eq!(timestamp("x", None).unwrap(), None);
    }
}
