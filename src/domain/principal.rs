//! Roles and the permissions they grant. This table is the documented authorization model
//! (README, "Roles"): the instance role IAM_OWNER holds every permission in every org; org
//! roles are granted with AddOrgMember and hold permissions in that org only.
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    OrgCreate,
    OrgRead,
    OrgMemberRead,
    OrgMemberWrite,
    OrgMemberDelete,
    UserRead,
    UserWrite,
    UserDelete,
    ProjectCreate,
    ProjectRead,
    ProjectWrite,
    ProjectDelete,
    ProjectAppRead,
    ProjectAppWrite,
    ProjectAppDelete,
    /// Reading the org's key policy (authnkeys.v1): whoever may read keys.
    PolicyRead,
    /// Setting it: ORG_OWNER and IAM_OWNER.
    PolicyWrite,
    /// Reading the audit trail and the webhooks (authnkeys.v1): ORG_OWNER, ORG_OWNER_VIEWER,
    /// IAM_OWNER.
    EventRead,
    /// Adding and removing webhooks: ORG_OWNER, IAM_OWNER.
    WebhookWrite,
}

impl Permission {
    pub const ALL: [Permission; 19] = [
        Permission::OrgCreate,
        Permission::OrgRead,
        Permission::OrgMemberRead,
        Permission::OrgMemberWrite,
        Permission::OrgMemberDelete,
        Permission::UserRead,
        Permission::UserWrite,
        Permission::UserDelete,
        Permission::ProjectCreate,
        Permission::ProjectRead,
        Permission::ProjectWrite,
        Permission::ProjectDelete,
        Permission::ProjectAppRead,
        Permission::ProjectAppWrite,
        Permission::ProjectAppDelete,
        Permission::PolicyRead,
        Permission::PolicyWrite,
        Permission::EventRead,
        Permission::WebhookWrite,
    ];

    pub fn as_str(self) -> &'static str {
        use Permission::*;
        match self {
            OrgCreate => "org.create",
            OrgRead => "org.read",
            OrgMemberRead => "org.member.read",
            OrgMemberWrite => "org.member.write",
            OrgMemberDelete => "org.member.delete",
            UserRead => "user.read",
            UserWrite => "user.write",
            UserDelete => "user.delete",
            ProjectCreate => "project.create",
            ProjectRead => "project.read",
            ProjectWrite => "project.write",
            ProjectDelete => "project.delete",
            ProjectAppRead => "project.app.read",
            ProjectAppWrite => "project.app.write",
            ProjectAppDelete => "project.app.delete",
            PolicyRead => "policy.read",
            PolicyWrite => "policy.write",
            EventRead => "event.read",
            WebhookWrite => "webhook.write",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Instance role: everything, in every org.
    IamOwner,
    OrgOwner,
    OrgOwnerViewer,
    OrgUserManager,
    OrgUserViewer,
    OrgProjectCreator,
    ProjectOwner,
    ProjectOwnerViewer,
}

const ORG_ROLES: [Role; 7] = [
    Role::OrgOwner,
    Role::OrgOwnerViewer,
    Role::OrgUserManager,
    Role::OrgUserViewer,
    Role::OrgProjectCreator,
    Role::ProjectOwner,
    Role::ProjectOwnerViewer,
];

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::IamOwner => "IAM_OWNER",
            Role::OrgOwner => "ORG_OWNER",
            Role::OrgOwnerViewer => "ORG_OWNER_VIEWER",
            Role::OrgUserManager => "ORG_USER_MANAGER",
            Role::OrgUserViewer => "ORG_USER_VIEWER",
            Role::OrgProjectCreator => "ORG_PROJECT_CREATOR",
            Role::ProjectOwner => "PROJECT_OWNER",
            Role::ProjectOwnerViewer => "PROJECT_OWNER_VIEWER",
        }
    }

    /// An org role by name (what AddOrgMember accepts).
    pub fn parse_org_role(name: &str) -> Option<Role> {
        ORG_ROLES.into_iter().find(|r| r.as_str() == name)
    }

    /// Any role by name, as stored.
    pub fn parse(name: &str) -> Option<Role> {
        if name == Role::IamOwner.as_str() {
            Some(Role::IamOwner)
        } else {
            Role::parse_org_role(name)
        }
    }

    pub fn org_role_names() -> Vec<&'static str> {
        ORG_ROLES.iter().map(|r| r.as_str()).collect()
    }

    pub fn grants(self, permission: Permission) -> bool {
        use Permission::*;
        if permission == PolicyRead {
            // Whoever may read keys may read the policy that governs adding them.
            return self.grants(UserRead) || self.grants(ProjectAppRead);
        }
        match self {
            Role::IamOwner => true,
            Role::OrgOwner => permission != OrgCreate,
            Role::OrgOwnerViewer => matches!(
                permission,
                OrgRead | OrgMemberRead | UserRead | ProjectRead | ProjectAppRead | EventRead
            ),
            Role::OrgUserManager => {
                matches!(permission, OrgRead | UserRead | UserWrite | UserDelete)
            }
            Role::OrgUserViewer => matches!(permission, OrgRead | UserRead),
            Role::OrgProjectCreator => matches!(permission, OrgRead | ProjectCreate),
            Role::ProjectOwner => matches!(
                permission,
                OrgRead
                    | ProjectRead
                    | ProjectWrite
                    | ProjectDelete
                    | ProjectAppRead
                    | ProjectAppWrite
                    | ProjectAppDelete
            ),
            Role::ProjectOwnerViewer => {
                matches!(permission, OrgRead | ProjectRead | ProjectAppRead)
            }
        }
    }
}

/// The privilege boundary: whether a caller holding `caller` (its instance roles and its roles
/// in the org in question) holds everything `target` grants. Only then may it manage a user
/// holding `target` (add or remove its keys, remove it, remove its membership) or grant
/// `target`. An instance role is matched only by the same instance role; org roles are
/// compared by the permissions they grant, so ORG_OWNER covers ORG_USER_MANAGER.
pub fn dominates(caller: &[Role], target: &[Role]) -> bool {
    if target.contains(&Role::IamOwner) && !caller.contains(&Role::IamOwner) {
        return false;
    }
    Permission::ALL
        .into_iter()
        .all(|p| !target.iter().any(|r| r.grants(p)) || caller.iter().any(|r| r.grants(p)))
}

/// The roles in `target` the caller does not cover, for error messages.
pub fn uncovered(caller: &[Role], target: &[Role]) -> Vec<&'static str> {
    target
        .iter()
        .filter(|r| !dominates(caller, std::slice::from_ref(r)))
        .map(|r| r.as_str())
        .collect()
}

/// Roles as stored: a comma-separated list of names.
pub fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Roles from storage; names this build does not know are skipped, not trusted.
pub fn roles_from_text(text: &str) -> Vec<Role> {
    text.split(',')
        .filter_map(|n| Role::parse(n.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        assert!(Role::IamOwner.grants(Permission::OrgCreate));
        assert!(!Role::OrgOwner.grants(Permission::OrgCreate));
        assert!(Role::OrgOwner.grants(Permission::ProjectAppDelete));
        assert!(Role::OrgUserManager.grants(Permission::UserWrite));
        assert!(!Role::OrgUserManager.grants(Permission::ProjectRead));
        assert!(Role::OrgUserViewer.grants(Permission::UserRead));
        assert!(!Role::OrgUserViewer.grants(Permission::UserWrite));
        assert!(Role::OrgProjectCreator.grants(Permission::ProjectCreate));
        assert!(!Role::ProjectOwnerViewer.grants(Permission::ProjectAppWrite));
        // org.member.read as ZITADEL's defaults give it: the owners and ORG_OWNER_VIEWER only.
        let readers: Vec<Role> = [Role::IamOwner]
            .into_iter()
            .chain(ORG_ROLES)
            .filter(|r| r.grants(Permission::OrgMemberRead))
            .collect();
        assert_eq!(
            readers,
            vec![Role::IamOwner, Role::OrgOwner, Role::OrgOwnerViewer]
        );
    }

    #[test]
    fn privilege_boundary() {
        use Role::*;
        assert!(dominates(&[IamOwner], &[IamOwner, OrgOwner]));
        assert!(dominates(&[IamOwner], &[OrgUserManager]));
        assert!(!dominates(&[OrgOwner], &[IamOwner]));
        assert!(!dominates(&[OrgUserManager], &[IamOwner, OrgOwner]));
        assert!(!dominates(&[OrgUserManager], &[OrgOwner]));
        assert!(dominates(&[OrgOwner], &[OrgUserManager, ProjectOwner]));
        assert!(dominates(&[OrgUserManager], &[OrgUserManager]));
        assert!(dominates(&[OrgUserManager], &[OrgUserViewer]));
        assert!(!dominates(&[OrgUserManager], &[ProjectOwnerViewer]));
        assert!(dominates(&[OrgUserManager], &[]));
        assert_eq!(
            uncovered(&[OrgUserManager], &[IamOwner, OrgUserViewer, OrgOwner]),
            vec!["IAM_OWNER", "ORG_OWNER"]
        );
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Role::parse_org_role("IAM_OWNER"), None);
        assert_eq!(Role::parse_org_role("ORG_OWNER"), Some(Role::OrgOwner));
        let text = roles_to_text(&[Role::OrgUserViewer, Role::ProjectOwner]);
        assert_eq!(text, "ORG_USER_VIEWER,PROJECT_OWNER");
        assert_eq!(
            roles_from_text(&text),
            vec![Role::OrgUserViewer, Role::ProjectOwner]
        );
        assert_eq!(roles_from_text("NOPE,IAM_OWNER"), vec![Role::IamOwner]);
    }
}
