//! `novacron-wanem`: command-line front end of the WAN emulator (up, exec, stats, set, blackhole, down).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use novacron_wanem::{LinkParams, Stats, Wanem, WanemConfig, parse};

#[derive(Parser)]
#[command(
    name = "novacron-wanem",
    about = "Userspace WAN emulator between two network namespaces (site-a, site-b)"
)]
struct Cli {
    /// Prefix of the namespace names ({prefix}site-a, {prefix}site-b), so several emulators can coexist.
    #[arg(long, global = true, default_value = "")]
    prefix: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct LinkArgs {
    /// Bottleneck rate per direction, e.g. 100mbit (0: unlimited).
    #[arg(long)]
    rate: Option<String>,
    /// Round-trip time added, split evenly between directions, e.g. 50ms.
    #[arg(long)]
    rtt: Option<String>,
    /// Random loss per direction, e.g. 0.1%.
    #[arg(long)]
    loss: Option<String>,
    /// Jitter per direction (no reordering), e.g. 2ms.
    #[arg(long)]
    jitter: Option<String>,
    /// Bottleneck queue in milliseconds at the rate (tail drop beyond), e.g. 50.
    #[arg(long)]
    queue_ms: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the sites and start the forwarder in the background.
    Up(LinkArgs),
    /// Run a command inside a site: exec site-a -- CMD...
    Exec {
        /// site-a or site-b
        site: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Bytes and packets that crossed, per direction, and drops by cause.
    Stats {
        /// Output format: text or json.
        #[arg(short = 'o', long, default_value = "text")]
        output: String,
    },
    /// Change impairments of the running emulator (unset values stay).
    Set(LinkArgs),
    /// Drop everything both ways for a while, e.g. blackhole 10s.
    Blackhole { duration: String },
    /// Stop the forwarder and delete the sites.
    Down,
    #[command(hide = true)]
    Serve(LinkArgs),
}

fn state_dir() -> PathBuf {
    PathBuf::from("/run/novacron-wanem")
}

fn sock_path(prefix: &str) -> PathBuf {
    state_dir().join(format!("{prefix}ctl.sock"))
}

fn pid_path(prefix: &str) -> PathBuf {
    state_dir().join(format!("{prefix}pid"))
}

fn apply(args: &LinkArgs, mut p: LinkParams) -> Result<LinkParams, String> {
    let e = |x: novacron_wanem::WanemError| x.to_string();
    for d in [&mut p.a_to_b, &mut p.b_to_a] {
        if let Some(r) = &args.rate {
            d.rate_bps = parse::rate_bps(r).map_err(e)?;
        }
        if let Some(r) = &args.rtt {
            d.delay = parse::duration(r).map_err(e)? / 2;
        }
        if let Some(l) = &args.loss {
            d.loss = parse::loss(l).map_err(e)?;
        }
        if let Some(j) = &args.jitter {
            d.jitter = parse::duration(j).map_err(e)?;
        }
        if let Some(q) = &args.queue_ms {
            let ms: f64 = q
                .trim_end_matches("ms")
                .parse()
                .map_err(|_| format!("invalid --queue-ms {q:?}: use milliseconds, e.g. 50"))?;
            if !ms.is_finite() || ms < 0.0 {
                return Err(format!("invalid --queue-ms {q:?}"));
            }
            d.queue = Duration::from_secs_f64(ms / 1000.0);
        }
    }
    Ok(p)
}

fn request(prefix: &str, line: &str) -> Result<String, String> {
    let path = sock_path(prefix);
    let mut s = UnixStream::connect(&path).map_err(|e| format!("no emulator running with prefix {prefix:?} ({}: {e}); start one with `novacron-wanem up`", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    writeln!(s, "{line}").map_err(|e| e.to_string())?;
    let mut resp = String::new();
    BufReader::new(s)
        .read_line(&mut resp)
        .map_err(|e| e.to_string())?;
    let resp = resp.trim().to_string();
    if let Some(err) = resp.strip_prefix("error ") {
        return Err(err.to_string());
    }
    Ok(resp)
}

fn serve(prefix: &str, args: &LinkArgs) -> Result<(), String> {
    let link = apply(args, LinkParams::symmetric(0, Duration::ZERO, 0.0))?;
    std::fs::create_dir_all(state_dir()).map_err(|e| e.to_string())?;
    let path = sock_path(prefix);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let wan = Wanem::up(WanemConfig::new(prefix, link)).map_err(|e| e.to_string())?;
    std::fs::write(pid_path(prefix), std::process::id().to_string()).map_err(|e| e.to_string())?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let mut line = String::new();
        let mut rd = BufReader::new(&conn);
        if rd.read_line(&mut line).is_err() {
            continue;
        }
        let mut w = &conn;
        let (cmd, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let reply = match cmd {
            "ping" => "ok".to_string(),
            "stats" => serde_json::to_string(&wan.stats()).unwrap_or_default(),
            "params" => serde_json::to_string(&wan.params()).unwrap_or_default(),
            "set" => match serde_json::from_str::<LinkParams>(rest) {
                Ok(p) => {
                    wan.set_params(p);
                    "ok".into()
                }
                Err(e) => format!("error bad parameters: {e}"),
            },
            "blackhole" => match rest.parse::<u64>() {
                Ok(ms) => {
                    wan.blackhole(Duration::from_millis(ms));
                    "ok".into()
                }
                Err(_) => "error bad duration".into(),
            },
            "down" => {
                let r = wan
                    .down()
                    .map(|_| "ok".to_string())
                    .unwrap_or_else(|e| format!("error {e}"));
                let _ = writeln!(w, "{r}");
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(pid_path(prefix));
                return Ok(());
            }
            other => format!("error unknown request {other:?}"),
        };
        let _ = writeln!(w, "{reply}");
    }
    Ok(())
}

fn print_stats(s: &Stats, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    println!(
        "{:<8} {:>12} {:>16} {:>12} {:>12} {:>12}",
        "dir", "packets", "bytes", "drop-loss", "drop-queue", "write-err"
    );
    for (name, d) in [("a->b", s.a_to_b), ("b->a", s.b_to_a)] {
        println!(
            "{:<8} {:>12} {:>16} {:>12} {:>12} {:>12}",
            name, d.packets, d.bytes, d.dropped_loss, d.dropped_queue, d.write_errors
        );
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let prefix = cli.prefix.as_str();
    match cli.cmd {
        Cmd::Serve(args) => serve(prefix, &args),
        Cmd::Up(args) => {
            apply(&args, LinkParams::symmetric(0, Duration::ZERO, 0.0))?;
            if request(prefix, "ping").is_ok() {
                return Err(format!(
                    "an emulator with prefix {prefix:?} is already up; run `novacron-wanem down` first"
                ));
            }
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            std::fs::create_dir_all(state_dir()).map_err(|e| e.to_string())?;
            let log = std::fs::File::create(state_dir().join(format!("{prefix}log")))
                .map_err(|e| e.to_string())?;
            let mut c = Command::new(exe);
            c.arg("--prefix").arg(prefix).arg("serve");
            for (flag, v) in [
                ("--rate", &args.rate),
                ("--rtt", &args.rtt),
                ("--loss", &args.loss),
                ("--jitter", &args.jitter),
                ("--queue-ms", &args.queue_ms),
            ] {
                if let Some(v) = v {
                    c.arg(flag).arg(v);
                }
            }
            c.stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log);
            // SAFETY: setsid is async-signal-safe and touches no Rust state in the child.
            unsafe {
                c.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let mut child = c.spawn().map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if request(prefix, "ping").is_ok() {
                    println!(
                        "sites {prefix}site-a (198.18.0.1) and {prefix}site-b (198.18.0.2) are up"
                    );
                    return Ok(());
                }
                if let Ok(Some(st)) = child.try_wait() {
                    let log = std::fs::read_to_string(state_dir().join(format!("{prefix}log")))
                        .unwrap_or_default();
                    return Err(format!("emulator exited ({st}): {}", log.trim()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err("emulator did not come up within 10 s".into())
        }
        Cmd::Exec { site, cmd } => {
            if site != "site-a" && site != "site-b" {
                return Err(format!("unknown site {site:?}: use site-a or site-b"));
            }
            let err = Command::new("ip")
                .args(["netns", "exec", &format!("{prefix}{site}")])
                .args(&cmd)
                .exec();
            Err(format!("ip netns exec: {err}"))
        }
        Cmd::Stats { output } => {
            let s: Stats =
                serde_json::from_str(&request(prefix, "stats")?).map_err(|e| e.to_string())?;
            print_stats(&s, output == "json");
            Ok(())
        }
        Cmd::Set(args) => {
            let cur: LinkParams =
                serde_json::from_str(&request(prefix, "params")?).map_err(|e| e.to_string())?;
            let new = apply(&args, cur)?;
            request(
                prefix,
                &format!(
                    "set {}",
                    serde_json::to_string(&new).map_err(|e| e.to_string())?
                ),
            )?;
            Ok(())
        }
        Cmd::Blackhole { duration } => {
            let d = parse::duration(&duration).map_err(|e| e.to_string())?;
            request(prefix, &format!("blackhole {}", d.as_millis()))?;
            Ok(())
        }
        Cmd::Down => match request(prefix, "down") {
            Ok(_) => Ok(()),
            Err(e) => {
                // No daemon answering: remove leftovers of one that died.
                if let Ok(pid) = std::fs::read_to_string(pid_path(prefix))
                    && let Ok(pid) = pid.trim().parse::<i32>()
                {
                    // SAFETY: plain kill(2) on a pid we recorded.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let _ = std::fs::remove_file(sock_path(prefix));
                let _ = std::fs::remove_file(pid_path(prefix));
                novacron_wanem::delete_sites(prefix).map_err(|x| format!("{e}; cleanup: {x}"))
            }
        },
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("novacron-wanem: {e}");
            ExitCode::FAILURE
        }
    }
}
