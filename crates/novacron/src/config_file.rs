//! `--config FILE` for the long-running roles (`up`, `server`, `agent`): a TOML file whose
//! keys are the role's long flags, an alternative to a long command line in a systemd unit.
//!
//! The file is folded into the command line before clap reads it, so a setting has one
//! parser, one default and one help text whichever way it arrives. Precedence: a flag on the
//! command line, then its environment variable, then the file, then the built-in default.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// Roles that take `--config`.
const ROLES: [&str; 3] = ["up", "server", "agent"];

/// Keys that hold a secret: a file with one of them must be readable by its owner only.
const SECRET_KEYS: [&str; 1] = ["join-token"];

/// Returns `argv` with the settings of the role's `--config` file appended as flags (only
/// those the command line and the environment leave unset), or `argv` unchanged when the
/// command is not a role or names no file. The error is one line that says what to fix.
pub fn fold_into_args(cli: Command, argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    // A first, lenient pass only finds the role and what the command line already sets;
    // the real parse (with its errors and --help) happens on the folded arguments.
    let Ok(matches) = cli
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(argv.clone())
    else {
        return Ok(argv);
    };
    let Some((role, role_matches)) = matches.subcommand() else {
        return Ok(argv);
    };
    if !ROLES.contains(&role) {
        return Ok(argv);
    }
    let Some(path) = role_matches
        .try_get_one::<std::path::PathBuf>("config")
        .ok()
        .flatten()
    else {
        return Ok(argv);
    };
    let Some(role_cmd) = cli.find_subcommand(role) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "{} is not valid TOML: {}",
            path.display(),
            e.to_string().trim().replace('\n', " ")
        )
    })?;
    let mut folded = argv;
    folded.extend(flags_from_table(
        role,
        role_cmd,
        role_matches,
        &table,
        path,
    )?);
    Ok(folded)
}

/// The flags the file's keys stand for, skipping those the command line or the environment
/// set already.
fn flags_from_table(
    role: &str,
    role_cmd: &Command,
    given: &ArgMatches,
    table: &toml::Table,
    path: &Path,
) -> Result<Vec<OsString>, String> {
    let mut flags = vec![];
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = role_cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !a.is_hide_set())
            .filter(|a| a.get_long() != Some("config"))
            .ok_or_else(|| {
                format!(
                    "unknown key `{key}` in {}: the keys are the long flags of `novacron {role}` ({})",
                    path.display(),
                    known_keys(role_cmd).join(", ")
                )
            })?;
        if SECRET_KEYS.contains(&long.as_str()) {
            refuse_if_others_can_read(path, key)?;
        }
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let takes_value = !matches!(
            arg.get_action(),
            ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
        );
        let many = matches!(arg.get_action(), ArgAction::Append);
        let bad = |want: &str| {
            format!(
                "key `{key}` in {} must be {want} (see `novacron {role} --help` for --{long})",
                path.display()
            )
        };
        match value {
            toml::Value::Boolean(on) if !takes_value => {
                if *on {
                    flags.push(OsString::from(format!("--{long}")));
                }
            }
            _ if !takes_value => return Err(bad("true or false")),
            toml::Value::Array(items) => {
                if !many && items.len() != 1 {
                    return Err(bad("a single value, not a list"));
                }
                for item in items {
                    let text = scalar(item).ok_or_else(|| bad("a list of strings or numbers"))?;
                    flags.push(OsString::from(format!("--{long}={text}")));
                }
            }
            other => {
                let text = scalar(other).ok_or_else(|| bad("a string, a number or a list"))?;
                flags.push(OsString::from(format!("--{long}={text}")));
            }
        }
    }
    Ok(flags)
}

/// A string, integer, float or boolean as the command line would spell it.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn known_keys(role_cmd: &Command) -> Vec<String> {
    role_cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "config" | "help" | "version" | "output" | "project"))
        .map(str::to_string)
        .collect()
}

/// A join token in a file others can read is a credential anyone on the host can use.
fn refuse_if_others_can_read(path: &Path, key: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds `{key}` but others can read it (mode {:o}): run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn fold(args: &[&str]) -> Result<crate::cli::Cli, String> {
        let argv = std::iter::once("novacron")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let folded = fold_into_args(crate::cli::Cli::command(), argv)?;
        use clap::Parser;
        crate::cli::Cli::try_parse_from(folded).map_err(|e| e.to_string())
    }

    fn server(cli: crate::cli::Cli) -> crate::roles::ServerArgs {
        match cli.command {
            crate::cli::Command::Server(a) => a,
            other => panic!("not server: {other:?}"),
        }
    }

    #[test]
    fn the_file_fills_what_the_command_line_leaves_unset() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "s.toml",
            "listen = \"0.0.0.0:9555\"\nmember_id = \"from-file\"\nsan = [\"cp1.example\", \"10.0.0.1\"]\nnode-lease-secs = 9\n",
            0o644,
        );
        let f = f.to_str().unwrap();
        let a = server(fold(&["server", "--config", f, "--member-id", "from-cli"]).unwrap());
        assert_eq!(a.listen.to_string(), "0.0.0.0:9555");
        assert_eq!(a.member_id.as_deref(), Some("from-cli"));
        assert_eq!(a.sans, ["cp1.example", "10.0.0.1"]);
        assert_eq!(a.node_lease_secs, 9);
        // Defaults stay for keys the file leaves out.
        assert_eq!(a.fence_margin_secs, 2);
        // Without --config, nothing is read.
        let a = server(fold(&["server"]).unwrap());
        assert_eq!(a.listen.to_string(), "127.0.0.1:9440");
    }

    #[test]
    fn an_agent_takes_its_required_settings_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "a.toml",
            "server = [\"https://cp1:9440\", \"https://cp2:9440\"]\nname = \"node1\"\ndata-dir = \"/var/lib/novacron/agent\"\njoin-token = \"secret\"\n",
            0o600,
        );
        let cli = fold(&["agent", "--config", f.to_str().unwrap()]).unwrap();
        let crate::cli::Command::Agent(a) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(a.servers, ["https://cp1:9440", "https://cp2:9440"]);
        assert_eq!(a.name, "node1");
        assert_eq!(a.join_token.as_deref(), Some("secret"));
    }

    #[test]
    fn bad_files_are_refused_with_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("listn = \"x\"\n", 0o644, "unknown key `listn`"),
            ("listen = [\"a:1\", \"b:2\"]\n", 0o644, "a single value"),
            ("listen = \n", 0o644, "is not valid TOML"),
            ("san = [{a = 1}]\n", 0o644, "a list of strings"),
            ("hollow = true\n", 0o644, "unknown key `hollow`"),
            ("config = \"x\"\n", 0o644, "unknown key `config`"),
        ];
        for (i, (text, mode, want)) in cases.iter().enumerate() {
            let role = if text.starts_with("hollow") {
                "agent"
            } else {
                "server"
            };
            let f = write(dir.path(), &format!("{i}.toml"), text, *mode);
            let err = fold(&[role, "--config", f.to_str().unwrap()]).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let f = write(dir.path(), "t.toml", "join-token = \"secret\"\n", 0o644);
        let err = fold(&["agent", "--config", f.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        let err = fold(&["server", "--config", "/nonexistent/s.toml"]).unwrap_err();
        assert!(err.contains("cannot read the config file"), "{err}");
        // A boolean flag takes true or false only.
        let f = write(dir.path(), "b.toml", "no-demo = \"yes\"\n", 0o644);
        let err = fold(&["up", "--config", f.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("true or false"), "{err}");
    }

    /// The examples shipped for systemd read as the roles' settings.
    #[test]
    fn the_packaged_example_files_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/config");
        for (role, file) in [("server", "server.toml"), ("agent", "agent.toml")] {
            let path = root.join(file);
            let cli = fold(&[role, "--config", path.to_str().unwrap()])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(matches!(
                (role, cli.command),
                ("server", crate::cli::Command::Server(_))
                    | ("agent", crate::cli::Command::Agent(_))
            ));
        }
    }
}
