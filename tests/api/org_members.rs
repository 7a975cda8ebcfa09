//! ListOrgMembers over gRPC, REST and Connect: who holds which role in an org, paged with
//! honest totals, the user id query, the permission, org isolation and bad input.
use authn_keys::proto::zitadel::{
    management::v1::*,
    member::v1::{
        EmailQuery, FirstNameQuery, Member, SearchQuery, UserIdQuery, search_query::Query,
    },
    v1::ListQuery,
};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;

fn by_user_id(id: &str) -> SearchQuery {
    SearchQuery {
        query: Some(Query::UserIdQuery(UserIdQuery { user_id: id.into() })),
    }
}

fn list(query: Option<ListQuery>, queries: Vec<SearchQuery>) -> ListOrgMembersRequest {
    ListOrgMembersRequest { query, queries }
}

fn ids(r: &ListOrgMembersResponse) -> Vec<&str> {
    r.result.iter().map(|m| m.user_id.as_str()).collect()
}

/// A machine user of the context org made a member with `roles` by `token`; its user id.
async fn new_member(app: &TestApp, token: &str, org: Option<&str>, roles: &[&str]) -> String {
    let mut c = app.grpc().await;
    let user = AddMachineUserRequest {
        user_name: unique("mbr"),
        name: "Member Name".into(),
        ..Default::default()
    };
    let user_id = c
        .add_machine_user(authed(token, org, user))
        .await
        .unwrap()
        .into_inner()
        .user_id;
    let grant = AddOrgMemberRequest {
        user_id: user_id.clone(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    };
    c.add_org_member(authed(token, org, grant)).await.unwrap();
    user_id
}

#[tokio::test]
async fn an_owner_lists_members_with_roles_pages_and_totals() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // An ORG_OWNER that holds no instance role.
    let (owner_id, owner_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let owner = app.token_for(&owner_key).await;
    let manager = new_member(&app, &owner, None, &["ORG_USER_MANAGER"]).await;
    let viewer = new_member(&app, &owner, None, &["ORG_USER_VIEWER", "PROJECT_OWNER"]).await;
    let mut c = app.grpc().await;

    let all = c
        .list_org_members(authed(&owner, None, list(None, vec![])))
        .await
        .unwrap()
        .into_inner();
    // Newest first; the admin is a member as ORG_OWNER of the default org, and its instance
    // role IAM_OWNER is not an org role.
    assert_eq!(
        ids(&all),
        vec![
            viewer.as_str(),
            manager.as_str(),
            owner_id.as_str(),
            app.admin_id.as_str()
        ]
    );
    let details = all.details.as_ref().unwrap();
    assert_eq!(details.total_result, 4);
    assert!(details.processed_sequence > 0);
    assert!(details.view_timestamp.is_some());
    let roles = |id: &str| -> Vec<String> {
        all.result
            .iter()
            .find(|m| m.user_id == id)
            .unwrap()
            .roles
            .clone()
    };
    assert_eq!(roles(&viewer), vec!["ORG_USER_VIEWER", "PROJECT_OWNER"]);
    assert_eq!(roles(&manager), vec!["ORG_USER_MANAGER"]);
    assert_eq!(roles(&owner_id), vec!["ORG_OWNER"]);
    assert_eq!(roles(&app.admin_id), vec!["ORG_OWNER"]);

    // A member as a user is shown: its login name as GetUserByID gives it, its name, machine.
    let user = c
        .get_user_by_id(authed(
            &owner,
            None,
            GetUserByIdRequest { id: viewer.clone() },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let m: &Member = &all.result[0];
    assert_eq!(m.preferred_login_name, user.preferred_login_name);
    assert!(m.preferred_login_name.starts_with(&user.user_name));
    assert_eq!(m.display_name, "Member Name");
    assert_eq!(m.user_type, 2, "TYPE_MACHINE");
    assert_eq!(m.user_resource_owner, app.org_id);
    assert_eq!(
        (
            m.email.as_str(),
            m.first_name.as_str(),
            m.avatar_url.as_str()
        ),
        ("", "", "")
    );
    let d = m.details.as_ref().unwrap();
    assert_eq!(d.resource_owner, app.org_id);
    assert!(d.creation_date.is_some() && d.change_date.is_some());

    // Oldest first, one page in the middle, with the total of all matches.
    let page = ListQuery {
        offset: 1,
        limit: 2,
        asc: true,
    };
    let middle = c
        .list_org_members(authed(&owner, None, list(Some(page), vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&middle), vec![owner_id.as_str(), manager.as_str()]);
    assert_eq!(middle.details.unwrap().total_result, 4);
    let past_end = ListQuery {
        offset: 10,
        limit: 2,
        asc: true,
    };
    let empty = c
        .list_org_members(authed(&owner, None, list(Some(past_end), vec![])))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.result.is_empty());
    assert_eq!(empty.details.unwrap().total_result, 4);

    // By user id.
    let one = c
        .list_org_members(authed(&owner, None, list(None, vec![by_user_id(&manager)])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&one), vec![manager.as_str()]);
    assert_eq!(one.details.unwrap().total_result, 1);
    for nobody in ["", "no-such-user"] {
        let none = c
            .list_org_members(authed(&owner, None, list(None, vec![by_user_id(nobody)])))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(none.details.unwrap().total_result, 0, "{nobody:?}");
    }
    // Name and email queries match no machine user, as in ZITADEL.
    let by_first_name = SearchQuery {
        query: Some(Query::FirstNameQuery(FirstNameQuery {
            first_name: String::new(),
            method: 4,
        })),
    };
    let none = c
        .list_org_members(authed(&owner, None, list(None, vec![by_first_name])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.details.unwrap().total_result, 0);

    // A removed membership is no longer listed.
    c.remove_org_member(authed(
        &owner,
        None,
        RemoveOrgMemberRequest {
            user_id: manager.clone(),
        },
    ))
    .await
    .unwrap();
    let after = c
        .list_org_members(authed(&owner, None, list(None, vec![])))
        .await
        .unwrap()
        .into_inner();
    assert!(!ids(&after).contains(&manager.as_str()));
    assert_eq!(after.details.unwrap().total_result, 3);
}

#[tokio::test]
async fn the_permission_and_other_orgs() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut c = app.grpc().await;
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let (_, viewer_key) = app.member_with_key(&admin, 0, "ORG_OWNER_VIEWER").await;
    let viewer = app.token_for(&viewer_key).await;
    let (owner_id, owner_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let owner = app.token_for(&owner_key).await;

    // ORG_USER_MANAGER does not hold org.member.read (neither in ZITADEL); ORG_OWNER_VIEWER does.
    assert_err(
        c.list_org_members(authed(&manager, None, list(None, vec![])))
            .await,
        Code::PermissionDenied,
        "AUTH-5mWD2",
    );
    let seen = c
        .list_org_members(authed(&viewer, None, list(None, vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.details.unwrap().total_result, 4);

    // Another org, with a member of its own.
    let other = c
        .add_org(authed(
            &admin,
            None,
            AddOrgRequest {
                name: unique("Elsewhere"),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let theirs = new_member(&app, &admin, Some(&other), &["ORG_USER_VIEWER"]).await;

    // An org where the caller holds no role is refused as the other v1 calls refuse it.
    for org in [other.as_str(), "404404"] {
        assert_err(
            c.list_org_members(authed(&owner, Some(org), list(None, vec![])))
                .await,
            Code::PermissionDenied,
            "AUTH-5mWD2",
        );
    }
    // The default org's listing never shows the other org's members, not even by id.
    let ours = c
        .list_org_members(authed(&owner, None, list(None, vec![])))
        .await
        .unwrap()
        .into_inner();
    assert!(!ids(&ours).contains(&theirs.as_str()));
    let by_id = c
        .list_org_members(authed(&owner, None, list(None, vec![by_user_id(&theirs)])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.details.unwrap().total_result, 0);
    // And the other org lists its own: the admin (who made it, ORG_OWNER) and its member.
    let there = c
        .list_org_members(authed(&admin, Some(&other), list(None, vec![])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&there), vec![theirs.as_str(), app.admin_id.as_str()]);
    assert!(!ids(&there).contains(&owner_id.as_str()));
    assert!(
        there
            .result
            .iter()
            .all(|m| m.details.as_ref().unwrap().resource_owner == other)
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let t = app.admin_token().await;
    let mut c = app.grpc().await;
    let too_many = ListQuery {
        limit: 1001,
        ..Default::default()
    };
    assert_err(
        c.list_org_members(authed(&t, None, list(Some(too_many), vec![])))
            .await,
        Code::InvalidArgument,
        "QUERY-4M9fs",
    );
    // A query of a kind this server does not know arrives empty: refused, never dropped.
    assert_err(
        c.list_org_members(authed(
            &t,
            None,
            list(None, vec![SearchQuery { query: None }]),
        ))
        .await,
        Code::InvalidArgument,
        "QUERY-Unsup1",
    );
    let bad_method = SearchQuery {
        query: Some(Query::EmailQuery(EmailQuery {
            email: "a@example.com".into(),
            method: 99,
        })),
    };
    let st = c
        .list_org_members(authed(&t, None, list(None, vec![bad_method])))
        .await
        .unwrap_err();
    assert_eq!(error_id(&st), "VALIDATION-Enum1");
    assert!(st.message().contains("email_query.method"), "{st:?}");
    let st = c
        .list_org_members(authed(
            &t,
            None,
            list(None, vec![by_user_id(&"x".repeat(201))]),
        ))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert_eq!(error_id(&st), "VALIDATION-Len01");
    assert!(st.message().contains("user_id_query.user_id"), "{st:?}");
}

#[tokio::test]
async fn over_rest_and_connect() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, owner_key) = app.member_with_key(&admin, 0, "ORG_OWNER").await;
    let owner = app.token_for(&owner_key).await;
    let member = new_member(&app, &owner, None, &["ORG_PROJECT_CREATOR"]).await;

    let (status, body) = app
        .rest(
            "POST",
            "/orgs/me/members/_search",
            Some(&owner),
            None,
            Some(json!({"query": {"limit": 2}, "queries": [{"userIdQuery": {"userId": member}}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["totalResult"], "1");
    let m = &body["result"][0];
    assert_eq!(m["userId"], json!(member));
    assert_eq!(m["roles"], json!(["ORG_PROJECT_CREATOR"]));
    assert_eq!(m["userType"], "TYPE_MACHINE");
    assert_eq!(m["displayName"], "Member Name");
    assert_eq!(m["userResourceOwner"], json!(app.org_id));
    assert_eq!(m["details"]["resourceOwner"], json!(app.org_id));
    assert!(m["preferredLoginName"].as_str().unwrap().contains('@'));

    // No body at all is the first page of everything.
    let (status, body) = app
        .rest("POST", "/orgs/me/members/_search", Some(&owner), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["details"]["totalResult"], "3");

    // Errors as grpc-gateway writes them.
    let (status, body) = app
        .rest(
            "POST",
            "/orgs/me/members/_search",
            Some(&owner),
            None,
            Some(json!({"query": {"limit": 5000}})),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (400, json!(3)), "{body}");
    assert_eq!(body["details"][0]["id"], "QUERY-4M9fs");
    // ZITADEL has no login name query for members: an unknown kind is refused, not ignored.
    let (status, body) = app
        .rest(
            "POST",
            "/orgs/me/members/_search",
            Some(&owner),
            None,
            Some(json!({"queries": [{"loginNameQuery": {"loginName": "admin"}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"][0]["id"], "QUERY-Unsup1");
    let (_, manager_key) = app.member_with_key(&admin, 0, "ORG_USER_MANAGER").await;
    let manager = app.token_for(&manager_key).await;
    let (status, body) = app
        .rest(
            "POST",
            "/orgs/me/members/_search",
            Some(&manager),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (403, json!(7)), "{body}");
    let (status, _) = app
        .rest("POST", "/orgs/me/members/_search", None, None, None)
        .await;
    assert_eq!(status, 401);

    // Connect, unary JSON, as ZITADEL's SDKs call it.
    let resp = app
        .http
        .post(format!(
            "{}/zitadel.management.v1.ManagementService/ListOrgMembers",
            app.base
        ))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body(json!({"query": {"asc": true}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["details"]["totalResult"], "4", "{body}");
    // Oldest first: the admin, the owner, the member, the manager.
    assert_eq!(body["result"][0]["userId"], json!(app.admin_id));
    assert_eq!(body["result"][2]["userId"], json!(member));
    assert_eq!(body["result"][2]["roles"], json!(["ORG_PROJECT_CREATOR"]));
}

/// The served descriptors carry ZITADEL's numbers and JSON names for the new messages.
#[tokio::test]
async fn descriptors_are_zitadels() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let mut files = Vec::new();
    for symbol in [
        "zitadel.management.v1.ManagementService",
        "zitadel.member.v1.Member",
    ] {
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::FileDescriptorResponse(f)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("no descriptors for {symbol}")
        };
        files.extend(
            f.file_descriptor_proto
                .iter()
                .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).unwrap()),
        );
    }
    let message = |pkg: &str, name: &str| {
        files
            .iter()
            .filter(|f| f.package() == pkg)
            .flat_map(|f| f.message_type.iter())
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("{pkg}.{name} is not served"))
            .clone()
    };
    let fields = |m: prost_types::DescriptorProto| -> Vec<(String, i32, String, String)> {
        m.field
            .iter()
            .map(|f| {
                (
                    f.name().to_owned(),
                    f.number(),
                    f.json_name().to_owned(),
                    f.type_name().to_owned(),
                )
            })
            .collect()
    };
    let f = |name: &str, n: i32, json: &str, ty: &str| {
        (name.to_owned(), n, json.to_owned(), ty.to_owned())
    };
    assert_eq!(
        fields(message("zitadel.management.v1", "ListOrgMembersRequest")),
        vec![
            f("query", 1, "query", ".zitadel.v1.ListQuery"),
            f("queries", 2, "queries", ".zitadel.member.v1.SearchQuery"),
        ]
    );
    assert_eq!(
        fields(message("zitadel.management.v1", "ListOrgMembersResponse")),
        vec![
            f("details", 1, "details", ".zitadel.v1.ListDetails"),
            f("result", 2, "result", ".zitadel.member.v1.Member"),
        ]
    );
    assert_eq!(
        fields(message("zitadel.member.v1", "Member")),
        vec![
            f("user_id", 1, "userId", ""),
            f("details", 2, "details", ".zitadel.v1.ObjectDetails"),
            f("roles", 3, "roles", ""),
            f("preferred_login_name", 4, "preferredLoginName", ""),
            f("email", 5, "email", ""),
            f("first_name", 6, "firstName", ""),
            f("last_name", 7, "lastName", ""),
            f("display_name", 8, "displayName", ""),
            f("avatar_url", 9, "avatarUrl", ""),
            f("user_type", 10, "userType", ".zitadel.user.v1.Type"),
            f("user_resource_owner", 11, "userResourceOwner", ""),
        ]
    );
    assert_eq!(
        fields(message("zitadel.member.v1", "SearchQuery")),
        vec![
            f(
                "first_name_query",
                1,
                "firstNameQuery",
                ".zitadel.member.v1.FirstNameQuery"
            ),
            f(
                "last_name_query",
                2,
                "lastNameQuery",
                ".zitadel.member.v1.LastNameQuery"
            ),
            f(
                "email_query",
                3,
                "emailQuery",
                ".zitadel.member.v1.EmailQuery"
            ),
            f(
                "user_id_query",
                4,
                "userIdQuery",
                ".zitadel.member.v1.UserIDQuery"
            ),
        ]
    );
    assert_eq!(
        fields(message("zitadel.member.v1", "UserIDQuery")),
        vec![f("user_id", 1, "userId", "")]
    );
}
