//! Organizations and their members.
use serde_json::json;

use super::{Ctx, Services};
use crate::{
    domain::{
        model::{Details, Member, Org},
        principal::{Role, dominates, uncovered},
        validate,
    },
    error::{Error, Result},
    storage::repo,
};

/// AddOrgMember asked to grant a role the caller does not hold.
pub const GRANT_BOUNDARY: &str = "AUTH-Priv02";

/// `My Org` → `my-org`: the label of an org's primary domain.
pub fn domain_label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let label = out.trim_matches('-').to_string();
    if label.is_empty() {
        "org".into()
    } else {
        label
    }
}

impl Services {
    /// AddOrg: creates the org; the caller becomes its ORG_OWNER.
    pub async fn add_org(&self, ctx: &Ctx, name: &str) -> Result<(String, Details)> {
        validate::name("name", name)?;
        let id = self.ids.next_id();
        let new_ctx = Ctx {
            actor: ctx.actor.clone(),
            org_id: id.clone(),
            roles: vec![Role::OrgOwner],
        };
        let mut w = self.begin_write(&new_ctx).await?;
        let now = w.now;
        let org = Org {
            id: id.clone(),
            name: name.to_owned(),
            primary_domain: format!("{}.{}", domain_label(name), self.settings.domain),
            sequence: 2,
            created_at: now,
            changed_at: now,
        };
        repo::insert_org(w.db(), &org).await.map_err(|e| {
            repo::on_conflict(
                e,
                "COMMAND-Org01",
                format!("an organization named {name:?} already exists"),
            )
        })?;
        repo::insert_org_member(
            w.db(),
            &Member {
                org_id: id.clone(),
                user_id: ctx.actor.clone(),
                roles: vec![Role::OrgOwner],
            },
            now,
        )
        .await?;
        w.record("org", &id, 1, "org.added", json!({"name": name}));
        w.record(
            "org",
            &id,
            2,
            "org.member.added",
            json!({"userId": ctx.actor, "roles": ["ORG_OWNER"]}),
        );
        w.commit().await?;
        Ok((id.clone(), Details::added(org.sequence, now, &id)))
    }

    /// GetMyOrg: the org of the context.
    pub async fn get_org(&self, ctx: &Ctx) -> Result<Org> {
        repo::find_org(&self.db, &ctx.org_id)
            .await?
            .ok_or_else(|| Error::not_found("QUERY-iTTGJ", "organization not found"))
    }

    /// AddOrgMember: grants org roles to a user of the org; only roles the caller holds itself.
    pub async fn add_org_member(
        &self,
        ctx: &Ctx,
        user_id: &str,
        role_names: &[String],
    ) -> Result<Details> {
        validate::id("user_id", user_id)?;
        let roles = parse_roles(role_names)?;
        if !dominates(&ctx.roles, &roles) {
            return Err(Error::permission_denied(
                GRANT_BOUNDARY,
                format!(
                    "you cannot grant {}: only roles you hold yourself can be granted",
                    uncovered(&ctx.roles, &roles).join(", ")
                ),
            ));
        }
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::bump_org(w.db(), &ctx.org_id, now)
            .await?
            .ok_or_else(|| Error::not_found("QUERY-iTTGJ", "organization not found"))?;
        if repo::find_user_in_org(w.db(), &ctx.org_id, user_id)
            .await?
            .is_none()
        {
            return Err(Error::failed_precondition(
                "ORG-GoXOn",
                format!("user {user_id} not found in this organization"),
            ));
        }
        let member = Member {
            org_id: ctx.org_id.clone(),
            user_id: user_id.to_owned(),
            roles,
        };
        repo::insert_org_member(w.db(), &member, now)
            .await
            .map_err(|e| {
                repo::on_conflict(
                    e,
                    "Org-PtXi1",
                    format!("user {user_id} is already a member"),
                )
            })?;
        let names: Vec<&str> = member.roles.iter().map(|r| r.as_str()).collect();
        w.record(
            "org",
            &ctx.org_id,
            sequence,
            "org.member.added",
            json!({"userId": user_id, "roles": names}),
        );
        w.commit().await?;
        Ok(Details::added(sequence, now, &ctx.org_id))
    }

    /// RemoveOrgMember.
    pub async fn remove_org_member(&self, ctx: &Ctx, user_id: &str) -> Result<Details> {
        validate::id("user_id", user_id)?;
        let mut w = self.begin_write(ctx).await?;
        let now = w.now;
        let sequence = repo::bump_org(w.db(), &ctx.org_id, now)
            .await?
            .ok_or_else(|| Error::not_found("QUERY-iTTGJ", "organization not found"))?;
        self.check_boundary(w.db(), ctx, user_id).await?;
        if !repo::delete_org_member(w.db(), &ctx.org_id, user_id).await? {
            return Err(Error::not_found(
                "Org-LFjMV",
                format!("user {user_id} is not a member of this organization"),
            ));
        }
        w.record(
            "org",
            &ctx.org_id,
            sequence,
            "org.member.removed",
            json!({"userId": user_id}),
        );
        w.commit().await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>> {
    if names.is_empty() {
        return Err(Error::invalid_argument(
            "ORG-4Mlfs",
            "roles must name at least one role",
        ));
    }
    let mut roles = Vec::new();
    for n in names {
        let role = Role::parse_org_role(n.trim()).ok_or_else(|| {
            Error::invalid_argument(
                "ORG-Rol01",
                format!(
                    "unknown role {n:?}; org roles are {}",
                    Role::org_role_names().join(", ")
                ),
            )
        })?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_roles() {
        assert_eq!(domain_label("My Org!"), "my-org");
        assert_eq!(domain_label("   "), "org");
        assert!(parse_roles(&[]).is_err());
        assert_eq!(
            parse_roles(&["IAM_OWNER".into()]).unwrap_err().id,
            "ORG-Rol01"
        );
        assert_eq!(
            parse_roles(&["ORG_OWNER".into(), "ORG_OWNER".into()]).unwrap(),
            vec![Role::OrgOwner]
        );
    }
}
