//! ListUsers, ListProjects, ListApps and ListOrgMembers: an org's objects page by page, with
//! honest totals. Other orgs' objects are never listed; the org comes from the caller's context.
use super::{Ctx, Services};
use crate::{
    domain::{
        list::{MemberQuery, Page, TextMatch, UserOrder, UserQuery},
        model::{App, Listed, MemberEntry, Project, User},
        validate,
    },
    error::Result,
    storage::repo,
};

/// A page request as the API gives it: offset, limit (0 = default) and order.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    pub offset: u64,
    pub limit: u32,
    pub asc: bool,
}

impl Services {
    fn page(&self, p: PageRequest) -> Result<Page> {
        Page::new(p.offset, p.limit, p.asc, self.settings.list_limits)
    }

    pub async fn list_users(
        &self,
        ctx: &Ctx,
        page: PageRequest,
        order: UserOrder,
        queries: &[UserQuery],
    ) -> Result<Listed<User>> {
        for q in queries {
            if let UserQuery::Ids(ids) = q {
                for id in ids {
                    validate::id("user_ids", id)?;
                }
            }
        }
        let page = self.page(page)?;
        let listed = repo::list_users(
            &self.db,
            &ctx.org_id,
            queries,
            order,
            page,
            &Self::event_scope(ctx),
        )
        .await?;
        Ok(self.listed(listed))
    }

    pub async fn list_projects(
        &self,
        ctx: &Ctx,
        page: PageRequest,
        names: &[TextMatch],
    ) -> Result<Listed<Project>> {
        let page = self.page(page)?;
        let listed =
            repo::list_projects(&self.db, &ctx.org_id, names, page, &Self::event_scope(ctx))
                .await?;
        Ok(self.listed(listed))
    }

    /// A project of another org, or none, lists no apps.
    pub async fn list_apps(
        &self,
        ctx: &Ctx,
        project_id: &str,
        page: PageRequest,
        names: &[TextMatch],
    ) -> Result<Listed<App>> {
        validate::id("project_id", project_id)?;
        let page = self.page(page)?;
        let listed = repo::list_apps(
            &self.db,
            &ctx.org_id,
            project_id,
            names,
            page,
            &Self::event_scope(ctx),
        )
        .await?;
        Ok(self.listed(listed))
    }

    /// ListOrgMembers: the context org's members with their roles. Users holding an instance
    /// role only are not members and are not listed.
    pub async fn list_org_members(
        &self,
        ctx: &Ctx,
        page: PageRequest,
        queries: &[MemberQuery],
    ) -> Result<Listed<MemberEntry>> {
        for q in queries {
            // ZITADEL's rule for this query: at most 200 characters (an empty one matches
            // nobody).
            if let MemberQuery::UserId(id) = q {
                validate::length("user_id_query.user_id", id, 0, validate::ID_MAX)?;
            }
        }
        let page = self.page(page)?;
        let listed = repo::list_org_members(
            &self.db,
            &ctx.org_id,
            queries,
            page,
            &Self::event_scope(ctx),
        )
        .await?;
        Ok(self.listed(listed))
    }
}
