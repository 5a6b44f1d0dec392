//! `novacron security-group create | list | show | delete | rule add | rule delete` and
//! `vm set-security-groups`: stateful firewall rules for the NICs VMs have on overlay
//! networks (docs/security-groups.md).

use clap::{Args, Subcommand};
use novacron_api_types::DEFAULT_PROJECT;
use novacron_api_types::security::{
    Direction, SecurityGroup, SecurityGroupCreateRequest, SecurityRule, SecurityRuleRequest,
};

use crate::output::{self, Format};

#[derive(Subcommand, Debug)]
pub enum SecurityGroupCommand {
    /// Create a security group (no rules: a VM in it takes in nothing until you add some).
    Create {
        /// The group's name, unique in its project.
        name: String,
        /// Free text shown by `security-group show`.
        #[arg(long)]
        description: Option<String>,
    },
    /// Security groups (of the selected --project, or of every project you may see).
    List,
    /// One security group and its rules.
    Show {
        /// The group's name.
        name: String,
    },
    /// Delete a security group (refused while a VM is in it or a rule names it).
    Delete {
        /// The group's name.
        name: String,
    },
    /// A group's rules: add or delete one (enforced on running VMs at once).
    #[command(
        subcommand,
        after_help = "Examples:\n  novacron security-group rule add web --in tcp/80 --from-group lb\n  novacron security-group rule add web --in icmp --from 10.10.0.0/24\n  novacron security-group rule add web --out udp/53 --to 10.10.0.2\n  novacron security-group rule delete web 3"
    )]
    Rule(RuleCommand),
}

#[derive(Subcommand, Debug)]
pub enum RuleCommand {
    /// Add a rule: what a VM in the group takes in (--in) or may send (--out).
    Add(RuleAddArgs),
    /// Delete a rule by its id (see `security-group show`).
    Delete {
        /// The group's name.
        group: String,
        /// The rule's id.
        id: u32,
    },
    /// A group's rules.
    List {
        /// The group's name.
        group: String,
    },
}

#[derive(Args, Debug)]
pub struct RuleAddArgs {
    /// The group's name.
    pub group: String,
    /// Traffic the group's VMs take in: tcp/80, udp/5000-5100, tcp, udp, icmp or any.
    #[arg(
        long = "in",
        value_name = "TRAFFIC",
        conflicts_with = "out",
        required_unless_present = "out"
    )]
    pub inbound: Option<String>,
    /// Traffic the group's VMs may send (once a group has an --out rule, nothing else leaves).
    #[arg(long, value_name = "TRAFFIC")]
    pub out: Option<String>,
    /// The sender of --in traffic as a CIDR (default 0.0.0.0/0).
    #[arg(long, value_name = "CIDR", conflicts_with_all = ["from_group", "to", "to_group"])]
    pub from: Option<String>,
    /// The sender of --in traffic as the VMs of this group.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["from", "to", "to_group"])]
    pub from_group: Option<String>,
    /// The receiver of --out traffic as a CIDR (default 0.0.0.0/0).
    #[arg(long, value_name = "CIDR", conflicts_with_all = ["to_group"])]
    pub to: Option<String>,
    /// The receiver of --out traffic as the VMs of this group.
    #[arg(long, value_name = "GROUP")]
    pub to_group: Option<String>,
}

impl RuleAddArgs {
    /// The request, or why the flags do not fit together.
    pub fn request(&self) -> anyhow::Result<SecurityRuleRequest> {
        let (direction, traffic) = match (&self.inbound, &self.out) {
            (Some(t), None) => (Direction::In, t.clone()),
            (None, Some(t)) => (Direction::Out, t.clone()),
            _ => anyhow::bail!("give one of --in TRAFFIC or --out TRAFFIC"),
        };
        let (cidr, group) = match direction {
            Direction::In => {
                if self.to.is_some() || self.to_group.is_some() {
                    anyhow::bail!(
                        "--to and --to-group go with --out; an --in rule takes --from or --from-group"
                    );
                }
                (self.from.clone(), self.from_group.clone())
            }
            Direction::Out => {
                if self.from.is_some() || self.from_group.is_some() {
                    anyhow::bail!(
                        "--from and --from-group go with --in; an --out rule takes --to or --to-group"
                    );
                }
                (self.to.clone(), self.to_group.clone())
            }
        };
        Ok(SecurityRuleRequest {
            direction,
            traffic,
            cidr,
            group,
        })
    }
}

/// `vm set-security-groups NAME [GROUP]...`.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// The VM.
    pub name: String,
    /// Its security groups, all of them (none: its NICs are not filtered).
    pub groups: Vec<String>,
}

const HEADERS: [&str; 4] = ["NAME", "PROJECT", "RULES", "DESCRIPTION"];
const RULE_HEADERS: [&str; 2] = ["ID", "RULE"];

fn rows(groups: &[SecurityGroup]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.project.clone(),
                g.rules.len().to_string(),
                g.description.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect()
}

fn rule_rows(rules: &[SecurityRule]) -> Vec<Vec<String>> {
    rules
        .iter()
        .map(|r| vec![r.id.to_string(), r.describe()])
        .collect()
}

fn details(g: &SecurityGroup) -> Vec<(&'static str, String)> {
    let mut d = vec![
        ("name", g.name.clone()),
        ("project", g.project.clone()),
        (
            "description",
            g.description.clone().unwrap_or_else(|| "-".into()),
        ),
        ("created", output::ago(g.created_at)),
    ];
    if g.rules.is_empty() {
        d.push(("rules", "none (takes in nothing)".into()));
    }
    for r in &g.rules {
        d.push(("rule", format!("{}: {}", r.id, r.describe())));
    }
    d
}

fn project() -> String {
    crate::cli::selected_project().unwrap_or_else(|| DEFAULT_PROJECT.into())
}

pub async fn run(cmd: SecurityGroupCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    match cmd {
        SecurityGroupCommand::Create { name, description } => {
            let g = c
                .security_group_create(&SecurityGroupCreateRequest {
                    name,
                    project: crate::cli::selected_project(),
                    description,
                })
                .await?;
            output::print_details(out, &g, || details(&g))
        }
        SecurityGroupCommand::List => {
            let groups = c
                .security_group_list(crate::cli::selected_project().as_deref())
                .await?;
            output::print(out, &groups, &HEADERS, || rows(&groups))
        }
        SecurityGroupCommand::Show { name } => {
            let g = c.security_group_show(&name, &project()).await?;
            output::print_details(out, &g, || details(&g))
        }
        SecurityGroupCommand::Delete { name } => {
            let g = c.security_group_delete(&name, &project()).await?;
            output::print_details(out, &g, || vec![("deleted", g.name.clone())])
        }
        SecurityGroupCommand::Rule(RuleCommand::Add(args)) => {
            let req = args.request()?;
            let added = c.security_rule_add(&args.group, &project(), &req).await?;
            output::print_details(out, &added, || {
                vec![
                    ("group", added.group.name.clone()),
                    (
                        "added",
                        format!("{}: {}", added.rule.id, added.rule.describe()),
                    ),
                ]
            })
        }
        SecurityGroupCommand::Rule(RuleCommand::Delete { group, id }) => {
            let g = c.security_rule_delete(&group, &project(), id).await?;
            output::print_details(out, &g, || details(&g))
        }
        SecurityGroupCommand::Rule(RuleCommand::List { group }) => {
            let g = c.security_group_show(&group, &project()).await?;
            output::print(out, &g.rules, &RULE_HEADERS, || rule_rows(&g.rules))
        }
    }
}

/// `vm set-security-groups`.
pub async fn set(args: SetArgs, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    let vm = c.vm_set_security_groups(&args.name, &args.groups).await?;
    output::print_details(out, &vm, || {
        vec![
            ("vm", vm.name.clone()),
            (
                "security groups",
                if vm.security_groups.is_empty() {
                    "none (not filtered)".into()
                } else {
                    vm.security_groups.join(", ")
                },
            ),
        ]
    })
}
