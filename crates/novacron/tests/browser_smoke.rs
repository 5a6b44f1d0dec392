//! Smoke test of the WebDriver client the web UI's end-to-end tests use
//! (`common/webdriver.rs`): a headless chromium, through chromedriver, fills in a small form
//! served from a thread of this test, reads back what the page made of it, answers a
//! `confirm()`, takes a screenshot, and leaves no process behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::webdriver::Browser;
use serde_json::json;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>NovaCron smoke</title></head>
<body>
<form id="form" onsubmit="return false">
  <label>Name <input id="name" type="text"></label>
  <select id="flavor">
    <option value="">(none)</option>
    <option value="s1">Small</option>
    <option value="m2">Medium two</option>
  </select>
  <button id="copy" type="button">Copy</button>
  <button id="delete" type="button">Delete</button>
</form>
<div id="out"></div>
<div id="chosen"></div>
<div id="confirmed"></div>
<div id="hidden" style="display:none">not shown</div>
<script>
  // Written a little later, like a UI that waits for its API: the test has to poll.
  document.getElementById('copy').addEventListener('click', () => {
    const name = document.getElementById('name').value;
    const flavor = document.getElementById('flavor').value;
    setTimeout(() => {
      document.getElementById('out').textContent = name;
      document.getElementById('chosen').textContent = flavor;
    }, 300);
  });
  document.getElementById('delete').addEventListener('click', () => {
    const yes = confirm('Delete vm-7?');
    document.getElementById('confirmed').textContent = yes ? 'deleted' : 'kept';
    console.warn('confirm answered', yes);
  });
</script>
</body></html>
"#;

/// Serves `PAGE` for every path on 127.0.0.1 until dropped.
struct PageServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PageServer {
    fn start() -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = serve(conn);
                }
            }
        });
        PageServer {
            url: format!("http://{addr}/"),
            stop,
            thread: Some(thread),
        }
    }
}

fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, ctype, body) = if request_line.starts_with("GET /favicon") {
        ("404 Not Found", "text/plain", "no icon")
    } else {
        ("200 OK", "text/html; charset=utf-8", PAGE)
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so that it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://").trim_end_matches('/'));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A subdirectory of `$NOVACRON_TEST_ARTIFACTS` (kept), or a fresh one under the system temp
/// dir (removed when the test passes).
fn artifacts_dir() -> (PathBuf, bool) {
    match std::env::var_os("NOVACRON_TEST_ARTIFACTS") {
        Some(base) => (PathBuf::from(base).join("browser_smoke"), false),
        None => (
            std::env::temp_dir().join(format!("novacron-browser-smoke-{}", std::process::id())),
            true,
        ),
    }
}

fn live_processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            out.push(format!("{name}: {cmdline}"));
        }
    }
    out
}

#[test]
fn browser_fills_a_form_answers_a_confirm_and_cleans_up() {
    let started = Instant::now();
    let (artifacts, remove_after) = artifacts_dir();
    let server = PageServer::start();
    let browser = Browser::start(&artifacts);
    let driver_pid = browser.chromedriver_pid();
    let scratch = browser.scratch_dir().to_path_buf();
    assert!(browser.user_data_dir().starts_with(&scratch));
    assert!(Path::new(&format!("/proc/{driver_pid}")).exists());
    eprintln!("browser up after {:?}", started.elapsed());

    browser.goto(&server.url);
    assert_eq!(browser.title(), "NovaCron smoke");
    assert_eq!(browser.current_url(), server.url);
    assert!(browser.try_find("#no-such-thing").is_none());
    assert!(!browser.find("#hidden").is_displayed());
    assert_eq!(browser.find("#name").attr("type").as_deref(), Some("text"));
    assert_eq!(browser.find("#name").attr("data-nothing"), None);

    // Type, replace, pick an option by its text, and have the page copy them.
    let name = browser.wait_for("#name", Duration::from_secs(5));
    name.send_keys("to be cleared");
    name.clear();
    let typed = "web-01 Zürich → vm #7";
    name.send_keys(typed);
    assert_eq!(name.property("value"), json!(typed));
    let flavor = browser.find("#flavor");
    assert_eq!(flavor.find_all("option").len(), 3);
    flavor.select_option("Medium two");
    assert_eq!(flavor.property("value"), json!("m2"));
    browser.find("#copy").click();
    browser.wait_until("the copied name", Duration::from_secs(5), |b| {
        b.find("#out").try_text().is_some_and(|t| !t.is_empty())
    });
    assert_eq!(browser.find("#out").text(), typed);
    assert_eq!(browser.find("#chosen").text(), "m2");
    // And by its value.
    flavor.select_option("s1");
    assert_eq!(flavor.property("selectedIndex"), json!(1));

    // Scripts, with an element as an argument.
    let out = browser.find("#out");
    assert_eq!(
        browser.execute(
            "return [arguments[0] + 1, arguments[1].id];",
            vec![json!(41), out.as_arg()]
        ),
        json!([42, "out"])
    );

    // A confirm() dialog: cancelled, then accepted.
    browser.find("#delete").click();
    assert_eq!(browser.alert_text(), "Delete vm-7?");
    browser.dismiss_alert();
    assert_eq!(browser.find("#confirmed").text(), "kept");
    browser.find("#delete").click();
    browser.accept_alert();
    assert_eq!(browser.find("#confirmed").text(), "deleted");
    assert_eq!(browser.try_alert_text(), None);
    let console = browser.console_log();
    assert!(
        console
            .iter()
            .any(|l| l.contains("confirm answered") && l.contains("true")),
        "{console:?}"
    );

    let shot = browser.screenshot("smoke form");
    assert_eq!(shot, artifacts.join("smoke-form.png"));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "not a PNG: {} bytes starting {:?}",
        png.len(),
        &png[..png.len().min(16)]
    );

    // An element of a page navigated away from is stale, which try_text tells apart.
    browser.goto(&server.url);
    assert_eq!(out.try_text(), None);
    assert_eq!(browser.find("#out").try_text().as_deref(), Some(""));

    // A wait that times out names what it waited for and leaves a screenshot.
    eprintln!("a timeout panic is expected next:");
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.wait_until("a <blink> tag", Duration::from_millis(500), |b| {
            b.try_find("blink").is_some()
        })
    }));
    let message = *waited.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("waiting for a <blink> tag"), "{message}");
    let timeout_shot = artifacts.join("timeout-a-blink-tag.png");
    assert!(
        std::fs::read(&timeout_shot)
            .unwrap()
            .starts_with(b"\x89PNG"),
        "{message}"
    );
    assert!(artifacts.join("timeout-a-blink-tag.html").exists());

    let before_drop = Instant::now();
    drop(browser);
    eprintln!("browser dropped in {:?}", before_drop.elapsed());
    assert!(
        !Path::new(&format!("/proc/{driver_pid}")).exists(),
        "chromedriver (pid {driver_pid}) still there after drop"
    );
    let left = live_processes_naming(&scratch);
    assert!(left.is_empty(), "browser processes left: {left:#?}");
    assert!(!scratch.exists(), "{} not removed", scratch.display());
    drop(server);
    eprintln!("whole test {:?}", started.elapsed());
    if remove_after {
        std::fs::remove_dir_all(&artifacts).unwrap();
    }
}

#[test]
fn base64_decodes_with_and_without_padding() {
    use common::webdriver::base64_decode;
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
    assert_eq!(
        base64_decode("iVBO\nRw0KGgo=").unwrap(),
        b"\x89PNG\r\n\x1a\n"
    );
    assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    assert!(base64_decode("Zm9v!").is_err());
}
