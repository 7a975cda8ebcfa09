//! ListUsers, ListProjects and ListApps: paging, order, queries, org isolation, and refusal of
//! query kinds that are not supported (never silently ignored).
use authn_keys::proto::zitadel::{
    management::v1::*,
    user::v1::{InUserIdQuery, SearchQuery, TypeQuery, UserNameQuery, search_query::Query},
    v1::ListQuery,
};
use serde_json::json;
use tonic::Code;

use crate::helpers::*;

const STARTS_WITH: i32 = 2;
const STARTS_WITH_IGNORE_CASE: i32 = 3;
const CONTAINS: i32 = 4;

fn by_name(name: &str, method: i32) -> SearchQuery {
    SearchQuery {
        query: Some(Query::UserNameQuery(UserNameQuery {
            user_name: name.into(),
            method,
        })),
    }
}

#[tokio::test]
async fn users_page_order_and_queries() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let prefix = unique("Lst");
    let mut ids = Vec::new();
    // `%` and `_` in names are matched literally, never as wildcards.
    for suffix in ["b_1", "a%2", "c-3"] {
        let req = AddMachineUserRequest {
            user_name: format!("{prefix}-{suffix}"),
            name: "listed".into(),
            ..Default::default()
        };
        ids.push(
            c.add_machine_user(authed(&t, None, req))
                .await
                .unwrap()
                .into_inner()
                .user_id,
        );
    }
    let list = |query: Option<ListQuery>, sorting_column: i32, queries: Vec<SearchQuery>| {
        let mut c = c.clone();
        let t = t.clone();
        async move {
            c.list_users(authed(
                &t,
                None,
                ListUsersRequest {
                    query,
                    sorting_column,
                    queries,
                },
            ))
            .await
            .map(|r| r.into_inner())
        }
    };
    let names = |r: &ListUsersResponse| r.result.iter().map(|u| u.id.clone()).collect::<Vec<_>>();

    // Newest first by default, with the total independent of the page.
    let all = list(None, 0, vec![by_name(&prefix, STARTS_WITH)])
        .await
        .unwrap();
    assert_eq!(all.details.as_ref().unwrap().total_result, 3);
    assert_eq!(
        names(&all),
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert!(all.result.iter().all(|u| u.user_name.starts_with(&prefix)));

    let page = ListQuery {
        offset: 1,
        limit: 1,
        asc: true,
    };
    let second = list(Some(page), 0, vec![by_name(&prefix, STARTS_WITH)])
        .await
        .unwrap();
    assert_eq!(second.details.as_ref().unwrap().total_result, 3);
    assert_eq!(names(&second), vec![ids[1].clone()]);

    // By user name, ascending: a%2 < b_1 < c-3.
    let asc = ListQuery {
        asc: true,
        ..Default::default()
    };
    let sorted = list(Some(asc), 1, vec![by_name(&prefix, STARTS_WITH)])
        .await
        .unwrap();
    assert_eq!(
        names(&sorted),
        vec![ids[1].clone(), ids[0].clone(), ids[2].clone()]
    );
    assert_eq!(sorted.sorting_column, 1);

    // Case: STARTS_WITH is case-sensitive, its _IGNORE_CASE twin is not.
    let upper = prefix.to_uppercase();
    let none = list(None, 0, vec![by_name(&upper, STARTS_WITH)])
        .await
        .unwrap();
    assert_eq!(none.details.as_ref().unwrap().total_result, 0);
    let folded = list(None, 0, vec![by_name(&upper, STARTS_WITH_IGNORE_CASE)])
        .await
        .unwrap();
    assert_eq!(folded.details.as_ref().unwrap().total_result, 3);

    // Wildcards are literal: "_" matches only the name holding it.
    let underscore = list(
        None,
        0,
        vec![by_name(&prefix, STARTS_WITH), by_name("_", CONTAINS)],
    )
    .await
    .unwrap();
    assert_eq!(names(&underscore), vec![ids[0].clone()]);
    let percent = list(
        None,
        0,
        vec![by_name(&prefix, STARTS_WITH), by_name("%", CONTAINS)],
    )
    .await
    .unwrap();
    assert_eq!(names(&percent), vec![ids[1].clone()]);

    // Ids, and types: every user here is a machine user.
    let some = list(
        None,
        0,
        vec![SearchQuery {
            query: Some(Query::InUserIdsQuery(InUserIdQuery {
                user_ids: vec![ids[0].clone(), ids[2].clone(), "no-such-user".into()],
            })),
        }],
    )
    .await
    .unwrap();
    assert_eq!(names(&some), vec![ids[2].clone(), ids[0].clone()]);
    let of_type = |t| SearchQuery {
        query: Some(Query::TypeQuery(TypeQuery { r#type: t })),
    };
    let machines = list(None, 0, vec![by_name(&prefix, STARTS_WITH), of_type(2)])
        .await
        .unwrap();
    assert_eq!(machines.details.as_ref().unwrap().total_result, 3);
    let humans = list(None, 0, vec![of_type(1)]).await.unwrap();
    assert_eq!(humans.details.as_ref().unwrap().total_result, 0);
    assert!(humans.result.is_empty());

    // A query kind this server does not declare arrives empty: refused, not ignored.
    assert_err(
        list(None, 0, vec![SearchQuery { query: None }]).await,
        Code::InvalidArgument,
        "QUERY-Unsup1",
    );
    assert_err(
        list(None, 7777, vec![]).await,
        Code::InvalidArgument,
        "VALIDATION-Enum1",
    );
    let too_many = ListQuery {
        limit: 1001,
        ..Default::default()
    };
    assert_err(
        list(Some(too_many), 0, vec![]).await,
        Code::InvalidArgument,
        "QUERY-4M9fs",
    );
}

#[tokio::test]
async fn listings_over_rest_and_across_orgs() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    // Another org with a user, a project and an app of its own.
    let (status, org) = app
        .rest(
            "POST",
            "/orgs",
            Some(&t),
            None,
            Some(json!({"name": unique("Other")})),
        )
        .await;
    assert_eq!(status, 200, "{org}");
    let other = org["id"].as_str().unwrap().to_owned();
    let other_user = unique("theirs");
    let (status, _) = app
        .rest(
            "POST",
            "/users/machine",
            Some(&t),
            Some(&other),
            Some(json!({"userName": other_user, "name": "theirs"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, project) = app
        .rest(
            "POST",
            "/projects",
            Some(&t),
            Some(&other),
            Some(json!({"name": unique("Theirs")})),
        )
        .await;
    assert_eq!(status, 200);
    let their_project = project["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .rest(
            "POST",
            &format!("/projects/{their_project}/apps/api"),
            Some(&t),
            Some(&other),
            Some(json!({"name": "their-api", "authMethodType": "API_AUTH_METHOD_TYPE_PRIVATE_KEY_JWT"})),
        )
        .await;
    assert_eq!(status, 200);

    // Our own project with two apps.
    let (pid, app_id, _, _) = app.project_with_app(&t, 1).await;
    let (status, second) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/api"),
            Some(&t),
            None,
            Some(json!({"name": "Second-API", "authMethodType": "API_AUTH_METHOD_TYPE_BASIC"})),
        )
        .await;
    assert_eq!(status, 200);

    // The default org sees its own objects only.
    let (status, users) = app
        .rest("POST", "/users/_search", Some(&t), None, Some(json!({})))
        .await;
    assert_eq!(status, 200, "{users}");
    let listed: Vec<&str> = users["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"admin"), "{users}");
    assert!(!listed.contains(&other_user.as_str()));
    assert_eq!(
        users["details"]["totalResult"],
        json!(listed.len().to_string())
    );

    let (status, projects) = app
        .rest(
            "POST",
            "/projects/_search",
            Some(&t),
            None,
            Some(json!({"query": {"limit": 10}})),
        )
        .await;
    assert_eq!(status, 200, "{projects}");
    let project_ids: Vec<&str> = projects["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(project_ids, vec![pid.as_str()]);

    let (status, apps) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/_search"),
            Some(&t),
            None,
            Some(json!({"queries": [{"nameQuery": {"name": "second", "method": "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE"}}]})),
        )
        .await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["details"]["totalResult"], "1");
    assert_eq!(apps["result"][0]["id"], second["appId"]);
    let (_, all_apps) = app
        .rest(
            "POST",
            &format!("/projects/{pid}/apps/_search"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(all_apps["details"]["totalResult"], "2");
    assert_eq!(all_apps["result"][1]["id"], json!(app_id));

    // Another org's project lists no apps from here, and an unknown query kind is refused.
    let (status, foreign) = app
        .rest(
            "POST",
            &format!("/projects/{their_project}/apps/_search"),
            Some(&t),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(foreign.get("result").is_none(), "{foreign}");
    let (status, body) = app
        .rest(
            "POST",
            "/projects/_search",
            Some(&t),
            None,
            Some(json!({"queries": [{"projectResourceOwnerQuery": {"resourceOwner": other}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"][0]["id"], "QUERY-Unsup1");

    // With the org header, the other org's objects are listed instead.
    let (_, theirs) = app
        .rest(
            "POST",
            "/users/_search",
            Some(&t),
            Some(&other),
            Some(json!({})),
        )
        .await;
    assert_eq!(theirs["result"][0]["userName"], json!(other_user));
    assert_eq!(theirs["details"]["totalResult"], "1");

    // A member without user.read cannot list users.
    let (_, key) = app.member_with_key(&t, 0, "ORG_PROJECT_CREATOR").await;
    let weak = app.token_for(&key).await;
    let (status, body) = app
        .rest("POST", "/users/_search", Some(&weak), None, Some(json!({})))
        .await;
    assert_eq!(status, 403, "{body}");
}

/// Text is compared exactly on every database: MySQL's default collations would ignore case
/// and accents, so ids and names differing only in those would collide or match each other.
#[tokio::test]
async fn ids_and_names_differing_in_case_or_accent_stay_apart() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let p = unique("cs");
    let mut ids = Vec::new();
    for (id, name) in [
        (format!("{p}Ab"), format!("Exact-{p}")),
        (format!("{p}ab"), format!("exact-{p}")),
        (format!("{p}aB"), format!("ëxact-{p}")),
    ] {
        let req = AddMachineUserRequest {
            user_id: Some(id.clone()),
            user_name: name,
            name: "case".into(),
            ..Default::default()
        };
        let added = c.add_machine_user(authed(&t, None, req)).await.unwrap();
        assert_eq!(added.into_inner().user_id, id);
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        let user = c
            .get_user_by_id(authed(&t, None, GetUserByIdRequest { id: id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(&user.id, id);
        assert_eq!(user.user_name.chars().next(), ['E', 'e', 'ë'][i].into());
    }
    let equals = |name: String, method: i32| {
        let mut c = c.clone();
        let t = t.clone();
        async move {
            let found = c
                .list_users(authed(
                    &t,
                    None,
                    ListUsersRequest {
                        queries: vec![by_name(&name, method)],
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            let mut ids: Vec<String> = found.result.into_iter().map(|u| u.id).collect();
            ids.sort();
            ids
        }
    };
    const EQUALS: i32 = 0;
    const EQUALS_IGNORE_CASE: i32 = 1;
    assert_eq!(
        equals(format!("exact-{p}"), EQUALS).await,
        vec![ids[1].clone()]
    );
    assert_eq!(
        equals(format!("ëxact-{p}"), EQUALS).await,
        vec![ids[2].clone()]
    );
    let mut folded = vec![ids[0].clone(), ids[1].clone()];
    folded.sort();
    assert_eq!(
        equals(format!("EXACT-{p}"), EQUALS_IGNORE_CASE).await,
        folded
    );
    // The very same id is still taken.
    let again = AddMachineUserRequest {
        user_id: Some(ids[0].clone()),
        user_name: unique("dup"),
        name: "case".into(),
        ..Default::default()
    };
    assert_eq!(
        c.add_machine_user(authed(&t, None, again))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
}

/// A MySQL server whose own SQL mode is NO_BACKSLASH_ESCAPES (and not strict) still gets
/// literal pattern matches and strict writes: the sessions set their own mode.
#[tokio::test]
async fn a_mysql_servers_own_sql_mode_changes_nothing() {
    use crate::outage::{Mariadb, Outage};
    use authn_keys::storage::ConnectionTrait;
    if !database_server().is_some_and(|url| url.starts_with("mysql")) {
        skip("MySQL/MariaDB only (DATABASE_URL is not mysql://)");
        return;
    }
    let server = Mariadb::create(&["--sql-mode=NO_BACKSLASH_ESCAPES"]);
    let app = TestApp::spawn_on_database(Some(&server.url()), |_| {}).await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let p = unique("esc");
    let mut ids = Vec::new();
    for name in [format!("{p}_1"), format!("{p}a1")] {
        let req = AddMachineUserRequest {
            user_name: name,
            name: "escapes".into(),
            ..Default::default()
        };
        ids.push(
            c.add_machine_user(authed(&t, None, req))
                .await
                .unwrap()
                .into_inner()
                .user_id,
        );
    }
    let found = c
        .list_users(authed(
            &t,
            None,
            ListUsersRequest {
                queries: vec![by_name(&format!("{p}_"), STARTS_WITH)],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let found: Vec<String> = found.result.into_iter().map(|u| u.id).collect();
    assert_eq!(found, vec![ids[0].clone()], "`_` matched as a wildcard");
    let db = &app.services.db;
    let mode: String = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT @@SESSION.sql_mode AS m",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "m")
        .unwrap();
    assert!(!mode.contains("NO_BACKSLASH_ESCAPES"), "{mode}");
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
}
