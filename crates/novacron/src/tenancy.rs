//! `novacron project | user | role-binding | token | login`: projects with their limits and
//! usage, local users, who holds which role where, API tokens (printed once), and exchanging
//! a password for a token kept in the CLI config.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use novacron_api_types::tenancy::{
    ApiToken, LoginRequest, Project, ProjectCreateRequest, ProjectLimits, ProjectSetRequest, Role,
    RoleBinding, TokenCreateRequest, TokenCreated, User, UserCreateRequest, parse_duration_secs,
};
use novacron_api_types::{format_size, parse_size};
use novacron_client::{Client, Config, default_config_path};

use crate::output::{self, Format, ago};

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project (cluster-admin).
    #[command(after_help = "Example:\n  novacron project create team-a --description \"Team A\"")]
    Create {
        /// The project's name (a DNS label).
        name: String,
        /// What the project is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The projects you may see.
    List,
    /// One project with its limits.
    Show {
        /// The project's name.
        name: String,
    },
    /// Delete a project (refused while it holds VMs, networks or images).
    Delete {
        /// The project's name.
        name: String,
    },
    /// Set a project's limits or description (cluster-admin); limits not given stay.
    #[command(
        after_help = "Example:\n  novacron project set team-a --max-vms 20 --max-cpus 40 --max-memory 128G --max-disk 2T"
    )]
    Set(ProjectSetArgs),
    /// What a project holds, against its limits.
    Usage {
        /// The project's name.
        name: String,
    },
    /// Make NAME the default project of this CLI (kept in its config; `--project` and
    /// NOVACRON_PROJECT still win). Without NAME: forget the default.
    Use {
        /// The project's name.
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ProjectSetArgs {
    /// The project's name.
    pub name: String,
    /// What the project is for.
    #[arg(long)]
    pub description: Option<String>,
    /// Most VMs the project may hold.
    #[arg(long)]
    pub max_vms: Option<u64>,
    /// Most virtual CPUs over all its VMs.
    #[arg(long)]
    pub max_cpus: Option<u64>,
    /// Most memory over all its VMs, e.g. 128G.
    #[arg(long)]
    pub max_memory: Option<String>,
    /// Most disk over all its VMs, e.g. 2T.
    #[arg(long)]
    pub max_disk: Option<String>,
    /// Most overlay networks.
    #[arg(long)]
    pub max_networks: Option<u64>,
    /// Most backup storage, e.g. 1T (recorded; not enforced yet).
    #[arg(long)]
    pub max_backup_storage: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a local user; with --password-stdin its password is read from stdin (else it
    /// is asked for on a terminal, or the user has none and works through tokens only).
    #[command(
        after_help = "Example:\n  echo 'a long secret' | novacron user create alice --password-stdin"
    )]
    Create {
        /// The user's name (a DNS label).
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Create the user without a password (it logs in with tokens an admin creates).
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// Every local user.
    List,
    /// Delete a user with its role bindings and tokens.
    Delete {
        /// The user's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleBindingCommand {
    /// Give USER a role in a project (the global --project: admin, operator, viewer) or in
    /// the cluster (--cluster: cluster-admin, cluster-viewer).
    #[command(after_help = "Examples:\n  \
        novacron role-binding add alice --project team-a --role operator\n  \
        novacron role-binding add bob --cluster --role cluster-viewer")]
    Add {
        /// The user's name.
        user: String,
        /// The role holds in the whole cluster (cluster-admin, cluster-viewer).
        #[arg(long)]
        cluster: bool,
        /// admin, operator, viewer; or with --cluster cluster-admin, cluster-viewer.
        #[arg(long)]
        role: String,
    },
    /// Every role binding.
    List,
    /// Remove USER's role in a project (--project) or in the cluster (--cluster).
    Remove {
        /// The user's name.
        user: String,
        /// Remove the user's cluster binding.
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token; it is printed this once (only its hash is kept).
    #[command(after_help = "Examples:\n  \
        novacron token create --project team-a --role viewer --expires 30d --name ci\n  \
        novacron token create --user alice --expires 12h")]
    Create {
        /// The user the token acts for (its roles never exceed the user's).
        #[arg(long)]
        user: Option<String>,
        /// admin, operator, viewer (in the project: --project, or the selected one), or
        /// cluster-admin, cluster-viewer.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime, e.g. 30d, 12h, 45m (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        /// A label for `token list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// The API tokens you manage (never their secrets).
    List,
    /// Revoke a token: it authenticates nothing any more.
    Revoke {
        /// The token's id (tk-...).
        id: String,
    },
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  novacron login alice        # asks for the password")]
pub struct LoginArgs {
    /// The user's name.
    pub user: String,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// How long the token lasts, e.g. 30d, 12h.
    #[arg(long, default_value = "30d")]
    pub expires: String,
}

fn role(s: &str) -> anyhow::Result<Role> {
    Ok(s.parse::<Role>()?)
}

fn size(flag: &str, s: &Option<String>) -> anyhow::Result<Option<u64>> {
    s.as_deref()
        .map(|v| parse_size(v).with_context(|| format!("--{flag} {v}")))
        .transpose()
}

/// Reads a password: the first line of stdin, or asked for on the terminal without echo.
fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let is_tty = crate::cli::is_tty(0);
    if !from_stdin && !is_tty {
        bail!("no terminal to ask for the password: pass it with --password-stdin");
    }
    if !from_stdin {
        eprint!("{prompt}");
    }
    let restore = if !from_stdin { echo_off() } else { None };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(t) = restore {
        // SAFETY: restoring the terminal attributes read from fd 0 by `echo_off`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// Turns the terminal's echo off; returns the attributes to restore.
fn echo_off() -> Option<libc::termios> {
    // SAFETY: tcgetattr fills a termios for fd 0; on failure it is not used.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return None;
    }
    let saved = t;
    t.c_lflag &= !libc::ECHO;
    // SAFETY: setting attributes of fd 0 from a termios tcgetattr filled.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    Some(saved)
}

fn limit_row(name: &str, used: String, limit: Option<String>) -> Vec<String> {
    vec![
        name.to_string(),
        used,
        limit.unwrap_or_else(|| "unlimited".into()),
    ]
}

fn project_details(p: &Project) -> Vec<(&'static str, String)> {
    let n = |v: Option<u64>| v.map_or("unlimited".into(), |v| v.to_string());
    let s = |v: Option<u64>| v.map_or("unlimited".into(), format_size);
    let l = &p.limits;
    vec![
        ("name", p.name.clone()),
        ("description", p.description.clone()),
        ("max-vms", n(l.max_vms)),
        ("max-cpus", n(l.max_cpus)),
        ("max-memory", s(l.max_memory_bytes)),
        ("max-disk", s(l.max_disk_bytes)),
        ("max-networks", n(l.max_networks)),
        ("max-backup-storage", s(l.max_backup_storage_bytes)),
        ("created", ago(p.created_at)),
    ]
}

fn token_rows(tokens: &[ApiToken]) -> Vec<Vec<String>> {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                dash(t.name.clone()),
                dash(t.user.clone()),
                dash(t.project.clone()),
                dash(t.role.map(|r| r.to_string())),
                ago(t.created_at),
                t.expires_at
                    .map_or("never".into(), |e| format!("{e} (unix)")),
            ]
        })
        .collect()
}

fn created_details(t: &TokenCreated) -> Vec<(&'static str, String)> {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    vec![
        ("token", t.token.clone()),
        ("id", t.info.id.clone()),
        ("user", dash(t.info.user.clone())),
        ("project", dash(t.info.project.clone())),
        ("role", dash(t.info.role.map(|r| r.to_string()))),
        (
            "expires",
            t.info
                .expires_at
                .map_or("never".into(), |e| format!("{e} (unix)")),
        ),
        ("note", "the token is shown only this once".into()),
    ]
}

pub async fn project(cmd: ProjectCommand, out: Format) -> anyhow::Result<()> {
    if let ProjectCommand::Use { name } = &cmd {
        let path = default_config_path();
        novacron_client::set_default_project(&path, name.as_deref())?;
        return output::print_details(out, &serde_json::json!({ "project": name }), || {
            vec![(
                "default project",
                name.clone().unwrap_or_else(|| "(none)".into()),
            )]
        });
    }
    let c = crate::cli::client()?;
    match cmd {
        ProjectCommand::Create { name, description } => {
            let p = c
                .project_create(&ProjectCreateRequest { name, description })
                .await?;
            output::print_details(out, &p, || project_details(&p))
        }
        ProjectCommand::List => {
            let ps = c.project_list().await?;
            output::print(
                out,
                &ps,
                &["NAME", "DESCRIPTION", "MAX-VMS", "CREATED"],
                || {
                    ps.iter()
                        .map(|p| {
                            vec![
                                p.name.clone(),
                                p.description.clone(),
                                p.limits
                                    .max_vms
                                    .map_or("unlimited".into(), |v| v.to_string()),
                                ago(p.created_at),
                            ]
                        })
                        .collect()
                },
            )
        }
        ProjectCommand::Show { name } => {
            let p = c.project_show(&name).await?;
            output::print_details(out, &p, || project_details(&p))
        }
        ProjectCommand::Delete { name } => {
            let p = c.project_delete(&name).await?;
            output::print_details(out, &p, || vec![("deleted", p.name.clone())])
        }
        ProjectCommand::Set(a) => {
            let limits = ProjectLimits {
                max_vms: a.max_vms,
                max_cpus: a.max_cpus,
                max_memory_bytes: size("max-memory", &a.max_memory)?,
                max_disk_bytes: size("max-disk", &a.max_disk)?,
                max_networks: a.max_networks,
                max_backup_storage_bytes: size("max-backup-storage", &a.max_backup_storage)?,
            };
            let p = c
                .project_set(
                    &a.name,
                    &ProjectSetRequest {
                        description: a.description,
                        limits,
                    },
                )
                .await?;
            output::print_details(out, &p, || project_details(&p))
        }
        ProjectCommand::Usage { name } => {
            let r = c.project_usage(&name).await?;
            let (u, l) = (r.usage, r.limits);
            let n = |v: Option<u64>| v.map(|v| v.to_string());
            let s = |v: Option<u64>| v.map(format_size);
            output::print(out, &r, &["RESOURCE", "USED", "LIMIT"], || {
                vec![
                    limit_row("vms", u.vms.to_string(), n(l.max_vms)),
                    limit_row("cpus", u.cpus.to_string(), n(l.max_cpus)),
                    limit_row("memory", format_size(u.memory_bytes), s(l.max_memory_bytes)),
                    limit_row("disk", format_size(u.disk_bytes), s(l.max_disk_bytes)),
                    limit_row("networks", u.networks.to_string(), n(l.max_networks)),
                    limit_row(
                        "backup-storage",
                        format_size(u.backup_storage_bytes),
                        s(l.max_backup_storage_bytes),
                    ),
                ]
            })
        }
        ProjectCommand::Use { .. } => unreachable!("handled above"),
    }
}

fn user_rows(users: &[User]) -> Vec<Vec<String>> {
    users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                if u.has_password { "yes" } else { "no" }.into(),
                ago(u.created_at),
            ]
        })
        .collect()
}

pub async fn user(cmd: UserCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    match cmd {
        UserCommand::Create {
            name,
            password_stdin,
            no_password,
        } => {
            let password = if no_password {
                None
            } else if password_stdin || crate::cli::is_tty(0) {
                Some(read_password(
                    password_stdin,
                    &format!("password for {name}: "),
                )?)
            } else {
                None
            };
            let u = c.user_create(&UserCreateRequest { name, password }).await?;
            output::print(out, &u, &["NAME", "PASSWORD", "CREATED"], || {
                user_rows(std::slice::from_ref(&u))
            })
        }
        UserCommand::List => {
            let us = c.user_list().await?;
            output::print(out, &us, &["NAME", "PASSWORD", "CREATED"], || {
                user_rows(&us)
            })
        }
        UserCommand::Delete { name } => {
            let u = c.user_delete(&name).await?;
            output::print_details(out, &u, || vec![("deleted", u.name.clone())])
        }
    }
}

fn binding_rows(bs: &[RoleBinding]) -> Vec<Vec<String>> {
    bs.iter()
        .map(|b| {
            vec![
                b.user.clone(),
                b.project.clone().unwrap_or_else(|| "(cluster)".into()),
                b.role.to_string(),
            ]
        })
        .collect()
}

/// The project a binding command names: the global `--project` (or NOVACRON_PROJECT, or the
/// config's default), unless `--cluster`.
fn binding_project(cluster: bool) -> anyhow::Result<Option<String>> {
    if cluster {
        return Ok(None);
    }
    match crate::cli::selected_project() {
        Some(p) => Ok(Some(p)),
        None => bail!("name the scope: --project P (a project role) or --cluster (a cluster role)"),
    }
}

pub async fn role_binding(cmd: RoleBindingCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    const HEADERS: [&str; 3] = ["USER", "PROJECT", "ROLE"];
    match cmd {
        RoleBindingCommand::Add {
            user,
            cluster,
            role: r,
        } => {
            let b = RoleBinding {
                user,
                project: binding_project(cluster)?,
                role: role(&r)?,
            };
            let b = c.role_binding_add(&b).await?;
            output::print(out, &b, &HEADERS, || binding_rows(std::slice::from_ref(&b)))
        }
        RoleBindingCommand::List => {
            let bs = c.role_binding_list().await?;
            output::print(out, &bs, &HEADERS, || binding_rows(&bs))
        }
        RoleBindingCommand::Remove { user, cluster } => {
            let project = binding_project(cluster)?;
            let b = c.role_binding_remove(&user, project.as_deref()).await?;
            output::print(out, &b, &HEADERS, || binding_rows(std::slice::from_ref(&b)))
        }
    }
}

pub async fn token(cmd: TokenCommand, out: Format) -> anyhow::Result<()> {
    let c = crate::cli::client()?;
    const HEADERS: [&str; 7] = [
        "ID", "NAME", "USER", "PROJECT", "ROLE", "CREATED", "EXPIRES",
    ];
    match cmd {
        TokenCommand::Create {
            user,
            role: r,
            expires,
            name,
        } => {
            let role = r.as_deref().map(role).transpose()?;
            let project = match role {
                Some(r) if r.is_cluster() => None,
                _ => crate::cli::selected_project(),
            };
            let ttl_seconds = expires
                .as_deref()
                .map(parse_duration_secs)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let t = c
                .token_create(&TokenCreateRequest {
                    name,
                    user,
                    project,
                    role,
                    ttl_seconds,
                })
                .await?;
            output::print_details(out, &t, || created_details(&t))
        }
        TokenCommand::List => {
            let ts = c.token_list().await?;
            output::print(out, &ts, &HEADERS, || token_rows(&ts))
        }
        TokenCommand::Revoke { id } => {
            let t = c.token_revoke(&id).await?;
            output::print(out, &t, &HEADERS, || token_rows(std::slice::from_ref(&t)))
        }
    }
}

/// Exchanges the user's password for a token and keeps it in the CLI config (which must
/// exist already: it says where the cluster is and which CA to trust).
/// `novacron whoami`: the token's identity and roles, as the control plane sees them.
pub async fn whoami(out: Format) -> anyhow::Result<()> {
    let me = crate::cli::client()?.whoami().await?;
    output::print_details(out, &me, || {
        let mut p = vec![("who", me.who.clone())];
        if let Some(r) = me.cluster_role {
            p.push(("cluster role", r.as_str().to_string()));
        }
        for (project, role) in &me.projects {
            p.push(("project", format!("{project}: {}", role.as_str())));
        }
        if let Some(home) = &me.home_project {
            p.push(("home project", home.clone()));
        }
        p
    })
}

pub async fn login(a: LoginArgs, out: Format) -> anyhow::Result<()> {
    let path = default_config_path();
    let mut config = Config::load_from(&path)?;
    let ttl = parse_duration_secs(&a.expires).map_err(anyhow::Error::msg)?;
    let password = read_password(a.password_stdin, &format!("password for {}: ", a.user))?;
    // Login needs no token; the config's (perhaps an expired one) is not sent anywhere else.
    let anonymous = Client::new(Config {
        token: String::new(),
        ..config.clone()
    })?;
    let t = anonymous
        .login(&LoginRequest {
            user: a.user.clone(),
            password,
            ttl_seconds: Some(ttl),
        })
        .await?;
    config.token = t.token.clone();
    config.save(&path)?;
    let shown = serde_json::json!({
        "user": a.user,
        "token_id": t.info.id,
        "expires_at": t.info.expires_at,
        "config": path.display().to_string(),
    });
    output::print_details(out, &shown, || {
        vec![
            ("logged in as", a.user.clone()),
            ("token id", t.info.id.clone()),
            ("saved in", path.display().to_string()),
        ]
    })
}
