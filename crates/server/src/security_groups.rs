//! Security groups in the control plane: create, list, show, delete (refused while a VM is
//! in the group or another group's rule names it), rules added and deleted, a VM's list of
//! groups set, and what each node's firewall needs ([`node_security`]). The API handlers
//! (`api::security_groups`) parse and delegate here; the decisions are pure functions
//! below. How agents enforce it: docs/security-groups.md.
//!
//! Concurrency: a group is one store key changed with compare-and-swap. Setting a VM's
//! groups rewrites each group's key in the VM's transaction (compared at the revision it
//! was read), so a delete that checked for users before that write fails its own compare
//! and looks again. A VM created naming a group that is deleted at the same moment keeps a
//! name that resolves to nothing: its NICs then take in nothing (they fail closed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use novacron_api_types::overlay::NodeOverlayNetwork;
use novacron_api_types::security::{
    MAX_RULES, NodeSecurityGroup, SecurityGroup, SecurityGroupCreateRequest, SecurityRule,
    SecurityRuleRequest, check_group_list,
};
use novacron_api_types::{ApiError, ErrorCode, validate_name};
use novacron_store::{Compare, Op};

use crate::records::{self, VmRecord, store_err};
use crate::state::AppState;
use crate::typed_store::{self, Change};

impl typed_store::Record for SecurityGroup {
    const WHAT: &'static str = "security group record";
}

fn not_found(project: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no security group {name:?} in project {project}: see `novacron security-group list`"
    ))
}

fn checked_names(project: &str, name: &str) -> Result<(), ApiError> {
    validate_name("project", project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("security group", name).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Changes group `project/name` with `change` (the compare-and-swap loop of
/// [`typed_store::update`]) and waits until the mirror has the result.
async fn update_group<F, Fut>(
    state: &AppState,
    project: &str,
    name: &str,
    change: F,
) -> Result<SecurityGroup, ApiError>
where
    F: FnMut(SecurityGroup) -> Fut,
    Fut: Future<Output = crate::api::ApiResult<Change<SecurityGroup>>>,
{
    checked_names(project, name)?;
    let key = records::security_group_key(project, name);
    let updated = typed_store::update(state.store.as_ref(), &key, change)
        .await
        .map_err(|e| e.0)?
        .ok_or_else(|| not_found(project, name))?;
    state
        .security_groups
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    Ok(updated.record)
}

/// The groups of `project`, from the mirror.
fn groups_of(state: &AppState, project: &str) -> Vec<Arc<SecurityGroup>> {
    state
        .security_groups
        .values_under(&records::security_group_key(project, ""))
}

/// The VMs (names) of `project` in group `name`.
pub fn users<'a>(
    vms: impl IntoIterator<Item = &'a VmRecord>,
    project: &str,
    name: &str,
) -> Vec<String> {
    vms.into_iter()
        .filter(|vm| vm.project == project && vm.security_groups.iter().any(|g| g == name))
        .map(|vm| vm.name.clone())
        .collect()
}

/// The groups of `project` with a rule that names group `name` (other than itself).
pub fn referrers(groups: &[Arc<SecurityGroup>], project: &str, name: &str) -> Vec<String> {
    groups
        .iter()
        .filter(|g| g.project == project && g.name != name)
        .filter(|g| g.rules.iter().any(|r| r.group.as_deref() == Some(name)))
        .map(|g| g.name.clone())
        .collect()
}

/// Refuses (404) a list that names a group `project` does not have.
pub fn check_exist(state: &AppState, project: &str, groups: &[String]) -> Result<(), ApiError> {
    check_group_list(groups)?;
    for g in groups {
        if state
            .security_groups
            .get(&records::security_group_key(project, g))
            .is_none()
        {
            return Err(not_found(project, g));
        }
    }
    Ok(())
}

/// Creates an empty group (no rules: a VM in it takes in nothing until rules are added).
pub async fn create(
    state: &AppState,
    project: &str,
    req: &SecurityGroupCreateRequest,
) -> Result<SecurityGroup, ApiError> {
    req.check()?;
    checked_names(project, &req.name)?;
    if state.projects.get(&records::project_key(project)).is_none() {
        return Err(ApiError::not_found(format!(
            "no project {project:?}: see `novacron project list`"
        )));
    }
    let group = SecurityGroup {
        name: req.name.clone(),
        project: project.to_string(),
        description: req.description.clone().filter(|d| !d.is_empty()),
        rules: vec![],
        next_rule_id: 1,
        created_at: records::now(),
    };
    let key = records::security_group_key(project, &req.name);
    let revision = typed_store::create(state.store.as_ref(), &key, &group, vec![])
        .await
        .map_err(|e| e.0)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::AlreadyExists,
                format!(
                    "security group {} already exists in project {project}: choose another name",
                    req.name
                ),
            )
        })?;
    state
        .security_groups
        .wait_for(revision, AppState::CATCH_UP)
        .await;
    tracing::info!(group = %group.name, project, "security group created");
    Ok(group)
}

/// Groups of `project`, or of every project when None, in (project, name) order.
pub fn list(state: &AppState, project: Option<&str>) -> Result<Vec<SecurityGroup>, ApiError> {
    if let Some(p) = project {
        validate_name("project", p).map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let groups = match project {
        Some(p) => groups_of(state, p),
        None => state.security_groups.values(),
    };
    let mut out: Vec<SecurityGroup> = groups.iter().map(|g| g.as_ref().clone()).collect();
    out.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    Ok(out)
}

pub fn show(state: &AppState, project: &str, name: &str) -> Result<SecurityGroup, ApiError> {
    checked_names(project, name)?;
    state
        .security_groups
        .get(&records::security_group_key(project, name))
        .map(|g| g.as_ref().clone())
        .ok_or_else(|| not_found(project, name))
}

/// Deletes a group no VM is in and no other group's rule names.
pub async fn delete(
    state: &AppState,
    project: &str,
    name: &str,
) -> Result<SecurityGroup, ApiError> {
    let deleted = update_group(state, project, name, |_| {
        async move {
            // Read from the store, not the mirror: a VM that joined the group before this
            // read of it rewrote the group in the same transaction, so it is listed here.
            let (kvs, _) = state
                .store
                .list(&records::vm_key(project, ""))
                .await
                .map_err(store_err)?;
            let vms: Vec<VmRecord> = kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice::<VmRecord>(&kv.value).ok())
                .collect();
            let users = users(&vms, project, name);
            if !users.is_empty() {
                return Err(ApiError::conflict(format!(
                    "security group {name} is in use by VM(s) {}: take them out with `novacron vm set-security-groups` first",
                    users.join(", ")
                ))
                .into());
            }
            let referrers = referrers(&groups_of(state, project), project, name);
            if !referrers.is_empty() {
                return Err(ApiError::conflict(format!(
                    "security group {name} is named by rules of group(s) {}: delete those rules first",
                    referrers.join(", ")
                ))
                .into());
            }
            Ok(Change::Delete {
                compares: vec![],
                ops: vec![],
            })
        }
    })
    .await?;
    tracing::info!(group = %name, project, "security group deleted");
    Ok(deleted)
}

/// The group with `rule` added, or why not (pure).
pub fn with_rule(
    mut group: SecurityGroup,
    req: &SecurityRuleRequest,
    groups_in_project: &BTreeSet<String>,
) -> Result<(SecurityGroup, SecurityRule), ApiError> {
    let rule = req.check(group.next_rule_id)?;
    if let Some(g) = &rule.group
        && g != &group.name
        && !groups_in_project.contains(g)
    {
        return Err(ApiError::not_found(format!(
            "the rule names security group {g}, which project {} does not have: create it first",
            group.project
        )));
    }
    let same = |r: &SecurityRule| SecurityRule { id: 0, ..r.clone() };
    if let Some(dup) = group.rules.iter().find(|r| same(r) == same(&rule)) {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!(
                "group {} already has this rule (id {}: {})",
                group.name,
                dup.id,
                dup.describe()
            ),
        ));
    }
    if group.rules.len() >= MAX_RULES {
        return Err(ApiError::invalid(format!(
            "group {} has {MAX_RULES} rules, the most it may hold: delete some or use another group",
            group.name
        )));
    }
    group.next_rule_id = group.next_rule_id.saturating_add(1);
    group.rules.push(rule.clone());
    Ok((group, rule))
}

/// Adds a rule; a group it names must exist in the same project.
pub async fn add_rule(
    state: &AppState,
    project: &str,
    name: &str,
    req: &SecurityRuleRequest,
) -> Result<(SecurityGroup, SecurityRule), ApiError> {
    let mut added = None;
    let group = update_group(state, project, name, |group| {
        let in_project: BTreeSet<String> = groups_of(state, project)
            .iter()
            .map(|g| g.name.clone())
            .collect();
        let result = with_rule(group, req, &in_project);
        if let Ok((_, rule)) = &result {
            added = Some(rule.clone());
        }
        async move {
            let (group, _) = result?;
            // The named group must still exist when the rule is written.
            let compares = match &req.group {
                Some(g) if g != name => {
                    let other = records::security_group_key(project, g);
                    let rev = state
                        .store
                        .get(&other)
                        .await
                        .map_err(store_err)?
                        .map(|kv| kv.mod_revision)
                        .ok_or_else(|| not_found(project, g))?;
                    vec![Compare::ModRevision {
                        key: other,
                        equals: rev,
                    }]
                }
                _ => vec![],
            };
            Ok(Change::WriteWith {
                record: group,
                compares,
                ops: vec![],
            })
        }
    })
    .await?;
    let rule = added.ok_or_else(|| ApiError::internal("rule added without an id"))?;
    tracing::info!(group = %name, project, rule = rule.id, what = %rule.describe(), "security group rule added");
    Ok((group, rule))
}

/// Deletes rule `id` of a group.
pub async fn delete_rule(
    state: &AppState,
    project: &str,
    name: &str,
    id: u32,
) -> Result<SecurityGroup, ApiError> {
    let group = update_group(state, project, name, |mut group| {
        let before = group.rules.len();
        group.rules.retain(|r| r.id != id);
        let gone = group.rules.len() < before;
        async move {
            if !gone {
                return Err(ApiError::not_found(format!(
                    "security group {name} has no rule {id}: see `novacron security-group show {name}`"
                ))
                .into());
            }
            Ok(Change::Write(group))
        }
    })
    .await?;
    tracing::info!(group = %name, project, rule = id, "security group rule deleted");
    Ok(group)
}

/// Replaces VM `project/vm`'s groups (empty: none). Takes effect on a running VM: its
/// node's firewall follows the control plane.
pub async fn set_vm_groups(
    state: &AppState,
    project: &str,
    vm: &str,
    groups: &[String],
) -> Result<VmRecord, ApiError> {
    validate_name("project", project).map_err(|e| ApiError::invalid(e.to_string()))?;
    validate_name("VM", vm).map_err(|e| ApiError::invalid(e.to_string()))?;
    check_exist(state, project, groups)?;
    let key = records::vm_key(project, vm);
    let updated = typed_store::update(state.store.as_ref(), &key, |mut rec: VmRecord| {
        let groups = groups.to_vec();
        async move {
            if rec.deleting {
                return Err(ApiError::conflict(format!("VM {vm} is being deleted")).into());
            }
            if rec.security_groups == groups {
                return Ok(Change::Keep);
            }
            // Each group is rewritten as it was read: its delete, if it checked for users
            // before this write, fails its own compare.
            let mut compares = vec![];
            let mut ops = vec![];
            for g in &groups {
                let gkey = records::security_group_key(project, g);
                let kv = state
                    .store
                    .get(&gkey)
                    .await
                    .map_err(store_err)?
                    .ok_or_else(|| not_found(project, g))?;
                compares.push(Compare::ModRevision {
                    key: gkey.clone(),
                    equals: kv.mod_revision,
                });
                ops.push(Op::Put {
                    key: gkey,
                    value: kv.value,
                });
            }
            rec.security_groups = groups;
            Ok(Change::WriteWith {
                record: rec,
                compares,
                ops,
            })
        }
    })
    .await
    .map_err(|e| e.0)?
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "no VM {vm:?} in project {project}: see `novacron vm list`"
        ))
    })?;
    state
        .vms
        .wait_for(updated.revision, AppState::CATCH_UP)
        .await;
    tracing::info!(vm, project, groups = ?groups, "VM security groups set");
    Ok(updated.record)
}

/// The groups a node's firewall needs: those of its local endpoints (with their rules) and
/// those their rules name (with the addresses of their members anywhere in the cluster).
/// A group an endpoint names that no longer exists is given with no rules, so the NIC takes
/// in nothing rather than everything.
pub fn node_security(
    networks: &[NodeOverlayNetwork],
    groups: &[Arc<SecurityGroup>],
    vms: &[Arc<VmRecord>],
) -> Vec<NodeSecurityGroup> {
    let by_key: BTreeMap<(&str, &str), &SecurityGroup> = groups
        .iter()
        .map(|g| ((g.project.as_str(), g.name.as_str()), g.as_ref()))
        .collect();
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for net in networks {
        for e in &net.local {
            for g in &e.security_groups {
                wanted.insert((net.project.clone(), g.clone()));
            }
        }
    }
    let mut named: BTreeSet<(String, String)> = BTreeSet::new();
    for (project, name) in &wanted {
        if let Some(g) = by_key.get(&(project.as_str(), name.as_str())) {
            for r in &g.rules {
                if let Some(other) = &r.group {
                    named.insert((project.clone(), other.clone()));
                }
            }
        }
    }
    let mut out = vec![];
    for (project, name) in wanted.union(&named) {
        let rules = if wanted.contains(&(project.clone(), name.clone())) {
            by_key
                .get(&(project.as_str(), name.as_str()))
                .map(|g| g.rules.clone())
                .unwrap_or_default()
        } else {
            vec![]
        };
        let members = if named.contains(&(project.clone(), name.clone())) {
            let mut ips: BTreeSet<String> = BTreeSet::new();
            for vm in vms
                .iter()
                .filter(|vm| &vm.project == project && vm.security_groups.contains(name))
            {
                for nic in vm.overlay_nics() {
                    ips.extend(nic.ips);
                }
            }
            ips.into_iter().collect()
        } else {
            vec![]
        };
        out.push(NodeSecurityGroup {
            project: project.clone(),
            name: name.clone(),
            rules,
            members,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use novacron_api_types::overlay::{Nic, OverlayEndpoint};
    use novacron_api_types::security::Direction;

    fn group(name: &str, rules: Vec<SecurityRule>) -> Arc<SecurityGroup> {
        Arc::new(SecurityGroup {
            name: name.into(),
            project: "default".into(),
            description: None,
            rules,
            next_rule_id: 9,
            created_at: 0,
        })
    }

    fn rule_req(traffic: &str, group: Option<&str>) -> SecurityRuleRequest {
        SecurityRuleRequest {
            direction: Direction::In,
            traffic: traffic.into(),
            cidr: None,
            group: group.map(Into::into),
        }
    }

    fn vm(name: &str, groups: &[&str], ip: &str) -> Arc<VmRecord> {
        Arc::new(VmRecord {
            name: name.into(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
            nics: vec![Nic {
                network: "app".into(),
                vni: 1000,
                mac: "02:00:00:00:00:01".into(),
                ips: vec![ip.into()],
            }],
            ..crate::records::example_vm(novacron_api_types::PowerState::Running)
        })
    }

    #[test]
    fn rules_get_fresh_ids_and_name_only_groups_of_the_project() {
        let g = group("web", vec![]).as_ref().clone();
        let known: BTreeSet<String> = ["lb".to_string()].into();
        let (g, r) = with_rule(g, &rule_req("tcp/80", Some("lb")), &known).unwrap();
        assert_eq!((r.id, g.next_rule_id), (9, 10));
        // The same rule again is refused; another gets the next id.
        let e = with_rule(g.clone(), &rule_req("tcp/80", Some("lb")), &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::AlreadyExists);
        let (g, r) = with_rule(g, &rule_req("icmp", None), &known).unwrap();
        assert_eq!((r.id, g.rules.len()), (10, 2));
        // An unknown group is refused; the group itself may be named.
        let e = with_rule(g.clone(), &rule_req("tcp/22", Some("nope")), &known).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(with_rule(g, &rule_req("tcp/22", Some("web")), &known).is_ok());
    }

    #[test]
    fn a_group_in_use_or_named_has_users_and_referrers() {
        let lb_rule = rule_req("tcp/80", Some("lb"))
            .check(1)
            .unwrap_or_else(|e| panic!("{e}"));
        let groups = vec![group("web", vec![lb_rule]), group("lb", vec![])];
        assert_eq!(referrers(&groups, "default", "lb"), vec!["web".to_string()]);
        assert!(referrers(&groups, "default", "web").is_empty());
        assert!(referrers(&groups, "other", "lb").is_empty());
        let vms = [vm("a", &["web"], "10.0.0.2")];
        let records = || vms.iter().map(|v| v.as_ref());
        assert_eq!(users(records(), "default", "web"), vec!["a".to_string()]);
        assert!(users(records(), "default", "lb").is_empty());
    }

    #[test]
    fn a_node_gets_its_endpoints_groups_and_the_members_their_rules_name() {
        let lb_rule = rule_req("tcp/80", Some("lb"))
            .check(1)
            .unwrap_or_else(|e| panic!("{e}"));
        let groups = vec![
            group("web", vec![lb_rule]),
            group("lb", vec![]),
            group("unused", vec![]),
        ];
        let vms = vec![
            vm("w1", &["web"], "10.0.0.2"),
            vm("l1", &["lb"], "10.0.0.3"),
            vm("l2", &["lb"], "10.0.0.4"),
        ];
        let net = |groups: &[&str]| NodeOverlayNetwork {
            project: "default".into(),
            name: "app".into(),
            vni: 1000,
            mtu: 1450,
            subnet: "10.0.0.0/24".into(),
            gateway: "10.0.0.1".into(),
            dhcp: true,
            nat: false,
            dns: false,
            local: vec![OverlayEndpoint {
                vm: "w1".into(),
                mac: "02:00:00:00:00:01".into(),
                ips: vec!["10.0.0.2".into()],
                security_groups: groups.iter().map(|g| g.to_string()).collect(),
                bandwidth_bps: None,
            }],
            peers: vec![],
        };
        let view = node_security(&[net(&["web"])], &groups, &vms);
        let names: Vec<&str> = view.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["lb", "web"]);
        assert_eq!(view[0].members, ["10.0.0.3", "10.0.0.4"]);
        assert!(view[0].rules.is_empty());
        assert_eq!(view[1].rules.len(), 1);
        assert!(view[1].members.is_empty());
        // No groups on the node's endpoints: nothing.
        assert!(node_security(&[net(&[])], &groups, &vms).is_empty());
        // A group that is gone comes with no rules (the NIC takes in nothing).
        let view = node_security(&[net(&["gone"])], &groups, &vms);
        assert_eq!(view.len(), 1);
        assert!(view[0].rules.is_empty());
    }
}
