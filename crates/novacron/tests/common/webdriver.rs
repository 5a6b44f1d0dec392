//! A minimal W3C WebDriver client for end-to-end tests of the web UI in a real browser:
//! Debian's `chromedriver` driving a headless `chromium`, spoken to over plain HTTP/1.1 on a
//! `std::net::TcpStream` (one connection per command, `Connection: close`).
//!
//! chromedriver and its chromium run in a network namespace of their own, which only the
//! browser's loopback is in; [`Browser::goto`] relays a URL's port of the host's loopback
//! into it (see `browser_net.rs` for why).
//!
//! Everything is blocking, and a failed command panics with the command and WebDriver's
//! error, as test code wants. [`Browser`] owns the chromedriver process: dropping it deletes
//! the session, kills and reaps chromedriver (bounded waits only) and kills any browser
//! process still running from its scratch directory.
//!
//! chromedriver (checked with 156) answers with `Content-Length` (no space after the colon)
//! and never chunks; the reader handles chunked bodies anyway.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::browser_net::{self, Netns, Relay};

/// The key under which W3C WebDriver names an element reference (the spec's "web element
/// identifier").
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long chromedriver may take to answer `GET /status` with `ready: true`.
const DRIVER_READY: Duration = Duration::from_secs(20);
/// Bound on one command's answer; page loads are bounded by the session's own 30 s first.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two checks of [`Browser::wait_until`] and friends.
const POLL: Duration = Duration::from_millis(200);
/// The title, a flash message and the start of the visible text of the page's `main` part
/// (else of its body), for a timeout's panic.
const SHOWN_SCRIPT: &str = "const m = document.querySelector('main') || document.body; \
    const f = document.getElementById('flash'); \
    return document.title + ' | ' + (f && !f.hidden ? 'flash: ' + f.innerText + ' | ' : '') \
    + (m ? m.innerText : '').slice(0, 800);";

/// An error reported by WebDriver (`value.error`, `value.message`), or a transport failure
/// (`error` is then `"transport"`, `status` 0).
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl WebDriverError {
    fn transport(message: String) -> WebDriverError {
        WebDriverError {
            status: 0,
            error: "transport".into(),
            message,
        }
    }

    /// The element was found once but its document changed under it (re-rendered, navigated
    /// away), or the driver no longer knows its reference.
    pub fn is_stale(&self) -> bool {
        self.error == "stale element reference" || self.error == "no such element"
    }

    pub fn is_no_such_alert(&self) -> bool {
        self.error == "no such alert"
    }
}

impl fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            write!(f, "{}: {}", self.error, self.message)
        } else {
            write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
        }
    }
}

/// The session's address: what a [`Browser`] and each of its [`Element`]s talk to.
#[derive(Debug, Clone)]
struct Wd {
    /// The namespace chromedriver listens in.
    net: Netns,
    port: u16,
    session: String,
}

impl Wd {
    /// One command on the session: `path` is relative to `/session/{id}` (empty for the
    /// session itself). Returns the answer's `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let full = format!("/session/{}{}", self.session, path);
        request(&self.net, self.port, method, &full, body, COMMAND_TIMEOUT)
    }

    /// Like [`Wd::call`], panicking with `what` and WebDriver's error on failure.
    fn cmd(&self, what: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {what} ({method} {path}) failed: {e}"))
    }

    fn page_source_tail(&self, chars: usize) -> String {
        match self.call("GET", "/source", None) {
            Ok(Value::String(s)) => {
                let skip = s.chars().count().saturating_sub(chars);
                let tail: String = s.chars().skip(skip).collect();
                if skip > 0 { format!("…{tail}") } else { tail }
            }
            Ok(other) => format!("<page source is not a string: {other}>"),
            Err(e) => format!("<page source unavailable: {e}>"),
        }
    }

    fn current_url(&self) -> String {
        match self.call("GET", "/url", None) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("<url unavailable: {e}>"),
        }
    }

    /// Elements matching `css` under `root` (`""` for the document, `/element/{id}` within).
    fn find_all(&self, root: &str, css: &str) -> Vec<Element> {
        let v = self.cmd(
            &format!("find elements `{css}`"),
            "POST",
            &format!("{root}/elements"),
            Some(json!({"using": "css selector", "value": css})),
        );
        let Value::Array(items) = v else {
            panic!("WebDriver find elements `{css}`: not an array: {v}")
        };
        items
            .iter()
            .map(|item| self.element_from(item, css))
            .collect()
    }

    fn try_find(&self, root: &str, css: &str) -> Option<Element> {
        match self.call(
            "POST",
            &format!("{root}/element"),
            Some(json!({"using": "css selector", "value": css})),
        ) {
            Ok(v) => Some(self.element_from(&v, css)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("WebDriver find element `{css}` failed: {e}"),
        }
    }

    fn find(&self, root: &str, css: &str) -> Element {
        self.try_find(root, css).unwrap_or_else(|| {
            let within = if root.is_empty() {
                String::new()
            } else {
                format!(" within {root}")
            };
            panic!(
                "no element matches `{css}`{within} on {}; page source tail:\n{}",
                self.current_url(),
                self.page_source_tail(3000)
            )
        })
    }

    fn element_from(&self, v: &Value, css: &str) -> Element {
        match v.get(ELEMENT_KEY).and_then(Value::as_str) {
            Some(id) => Element {
                wd: self.clone(),
                id: id.to_string(),
                css: css.to_string(),
            },
            None => panic!("WebDriver answer for `{css}` is not an element reference: {v}"),
        }
    }
}

/// A headless chromium driven through its own chromedriver. See the module's doc.
pub struct Browser {
    wd: Wd,
    child: Option<Child>,
    artifacts: PathBuf,
    /// Holds the profile (`--user-data-dir`) and the `HOME` the browser runs with, so that
    /// every process it starts (the crashpad handlers too) names this directory.
    scratch: PathBuf,
    user_data_dir: PathBuf,
    log: PathBuf,
    /// One per port of the host's loopback that a URL of [`Browser::goto`] named.
    relays: Mutex<Vec<Relay>>,
    /// Keeps chromedriver's port taken on the host (see [`Browser::start`]).
    _reserved: std::net::TcpListener,
}

impl Browser {
    /// Starts chromedriver in a new network namespace (on a free port of its 127.0.0.1, its
    /// output into a log file in `artifacts_dir`) and a headless chromium session that accepts the self-signed
    /// certificates of the servers under test.
    pub fn start(artifacts_dir: &Path) -> Browser {
        std::fs::create_dir_all(artifacts_dir)
            .unwrap_or_else(|e| panic!("creating artifacts dir {}: {e}", artifacts_dir.display()));
        let scratch = unique_scratch_dir();
        let user_data_dir = scratch.join("profile");
        let home = scratch.join("home");
        for d in [&user_data_dir, &home] {
            std::fs::create_dir_all(d)
                .unwrap_or_else(|e| panic!("creating browser dir {}: {e}", d.display()));
        }
        let log = unused_path(artifacts_dir, "chromedriver", "log");
        let log_file =
            File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let log_err = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating {}: {e}", log.display()));
        // chromedriver listens in its namespace; the same port stays bound on the host for as
        // long as the browser lives, so no server under test gets it and clashes with the
        // driver when its port is relayed in.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("reserving a port for chromedriver: {e}"));
        let port = reserved
            .local_addr()
            .unwrap_or_else(|e| panic!("reserving a port for chromedriver: {e}"))
            .port();
        // Same process group as the test: a Ctrl-C or nextest's timeout reaches the driver
        // and the browser too.
        let mut child = browser_net::command_in_new_netns(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Each command and its answer, for a test that failed.
            .arg("--log-level=INFO")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        let net = match Netns::of_process(child.id()) {
            Ok(n) => n,
            Err(e) => {
                super::stop_child(&mut child, Duration::from_secs(5));
                let _ = std::fs::remove_dir_all(&scratch);
                panic!(
                    "chromedriver's network namespace: {e}; {}:\n{}",
                    log.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        // From here on, Drop cleans up whatever a panic leaves behind.
        let mut browser = Browser {
            wd: Wd {
                net,
                port,
                session: String::new(),
            },
            child: Some(child),
            artifacts: artifacts_dir.to_path_buf(),
            scratch,
            user_data_dir,
            log,
            relays: Mutex::new(vec![]),
            _reserved: reserved,
        };
        browser.wait_driver_ready();
        browser.new_session();
        browser
    }

    fn wait_driver_ready(&mut self) {
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "chromedriver exited ({status}) before it was ready; {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
            let last = match request(
                &self.wd.net,
                self.wd.port,
                "GET",
                "/status",
                None,
                Duration::from_secs(2),
            ) {
                Ok(v) if v.get("ready") == Some(&Value::Bool(true)) => return,
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver on port {} not ready after {DRIVER_READY:?} (last: {last}); {}:\n{}",
                    self.wd.port,
                    self.log.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn new_session(&mut self) {
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "acceptInsecureCerts": true,
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "timeouts": {"implicit": 0, "pageLoad": 30_000, "script": 30_000},
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", self.user_data_dir.display()),
                        ],
                    },
                }
            }
        });
        // A browser that dies while starting ("DevToolsActivePort file doesn't exist") is
        // retried once.
        let mut attempt = 0;
        let v = loop {
            attempt += 1;
            match request(
                &self.wd.net,
                self.wd.port,
                "POST",
                "/session",
                Some(caps.clone()),
                COMMAND_TIMEOUT,
            ) {
                Ok(v) => break v,
                Err(e) if attempt < 2 && e.error == "session not created" => {
                    eprintln!("webdriver: new session failed, retrying: {e}");
                }
                Err(e) => panic!(
                    "WebDriver new session failed: {e}; {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                ),
            }
        };
        match v.get("sessionId").and_then(Value::as_str) {
            Some(id) => self.wd.session = id.to_string(),
            None => panic!("WebDriver new session: no sessionId in {v}"),
        }
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Where screenshots, page sources and chromedriver's log go.
    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// The chromium profile directory (`--user-data-dir`), a fresh one per browser.
    pub fn user_data_dir(&self) -> &Path {
        &self.user_data_dir
    }

    /// The directory holding the profile and the browser's `HOME`: every process the
    /// browser starts names it on its command line. Removed on drop.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// The process id of chromedriver (0 once it has been reaped).
    pub fn chromedriver_pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Any command of the session, for what the helpers don't cover: `path` is relative to
    /// `/session/{id}` (e.g. `"/window/rect"`); returns the answer's `value`.
    pub fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.wd.call(method, path, body)
    }

    /// Navigates and waits for the page load (bounded by the session's 30 s). A URL on the
    /// host's loopback is reached through a relay of its port into the browser's namespace,
    /// started on the first URL naming that port; the browser reaches no other host.
    pub fn goto(&self, url: &str) {
        self.relay_port_of(url);
        self.wd.cmd(
            &format!("navigate to {url}"),
            "POST",
            "/url",
            Some(json!({ "url": url })),
        );
    }

    fn relay_port_of(&self, url: &str) {
        let Some(port) = browser_net::loopback_port(url) else {
            if url.starts_with("http") || url.starts_with("ws") {
                panic!("{url}: the browser reaches only the host's loopback (127.0.0.1)");
            }
            return;
        };
        let mut relays = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        if relays.iter().all(|r| r.port() != port) {
            let relay = Relay::start(&self.wd.net, port)
                .unwrap_or_else(|e| panic!("relaying port {port} into the browser: {e}"));
            relays.push(relay);
        }
    }

    pub fn refresh(&self) {
        self.wd.cmd("refresh", "POST", "/refresh", Some(json!({})));
    }

    pub fn current_url(&self) -> String {
        as_string(self.wd.cmd("get current url", "GET", "/url", None))
    }

    pub fn title(&self) -> String {
        as_string(self.wd.cmd("get title", "GET", "/title", None))
    }

    pub fn page_source(&self) -> String {
        as_string(self.wd.cmd("get page source", "GET", "/source", None))
    }

    /// The browser console's entries since the last call (`console.*` calls, uncaught
    /// errors, failed loads), one line each: `LEVEL source message`.
    pub fn console_log(&self) -> Vec<String> {
        self.try_console_log()
            .unwrap_or_else(|e| panic!("WebDriver get browser log failed: {e}"))
    }

    fn try_console_log(&self) -> Result<Vec<String>, WebDriverError> {
        let v = self
            .wd
            .call("POST", "/se/log", Some(json!({"type": "browser"})))?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e.get("level").and_then(Value::as_str).unwrap_or("?"),
                            e.get("message").and_then(Value::as_str).unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The one (first) element matching `css`; panics with the page source's tail if none.
    pub fn find(&self, css: &str) -> Element {
        self.wd.find("", css)
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.wd.find_all("", css)
    }

    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.wd.try_find("", css)
    }

    /// Polls until an element matching `css` is present and displayed, and returns the
    /// first such element.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.wait_some(&format!("{css} displayed"), timeout, |b| {
            b.find_all(css)
                .into_iter()
                .find(|e| e.try_is_displayed() == Some(true))
        })
    }

    /// Polls `f` every 200 ms until it returns true. On timeout, saves a screenshot
    /// `timeout-<what>.png`, the page source `timeout-<what>.html` and the browser console
    /// `timeout-<what>.console.txt` into the artifacts dir and panics naming `what`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Browser) -> bool) {
        self.wait_some(what, timeout, |b| f(b).then_some(()))
    }

    /// Polls `f` every 200 ms until it returns `Some`, and returns that; times out like
    /// [`Browser::wait_until`].
    pub fn wait_some<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            let now = Instant::now();
            if now >= deadline {
                self.timed_out(what, timeout);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    fn timed_out(&self, what: &str, timeout: Duration) -> ! {
        let name = format!("timeout-{}", sanitize(what));
        let shot = match self.try_screenshot(&name) {
            Ok(p) => p.display().to_string(),
            Err(e) => format!("<no screenshot: {e}>"),
        };
        let source = self.artifacts.join(format!("{name}.html"));
        let source = match self.wd.call("GET", "/source", None) {
            Ok(v) => match std::fs::write(&source, as_string(v)) {
                Ok(()) => source.display().to_string(),
                Err(e) => format!("<writing {}: {e}>", source.display()),
            },
            Err(e) => format!("<no page source: {e}>"),
        };
        let console = self.artifacts.join(format!("{name}.console.txt"));
        let mut errors = Vec::new();
        let console = match self.try_console_log() {
            Ok(lines) => {
                errors = lines
                    .iter()
                    .filter(|l| l.starts_with("SEVERE") || l.starts_with("WARNING"))
                    .cloned()
                    .collect();
                match std::fs::write(&console, lines.join("\n")) {
                    Ok(()) => console.display().to_string(),
                    Err(e) => format!("<writing {}: {e}>", console.display()),
                }
            }
            Err(e) => format!("<no console log: {e}>"),
        };
        // What the page showed, in the panic itself: a CI log keeps it, the artifacts stay on
        // the CI machine.
        let shown = self
            .wd
            .call(
                "POST",
                "/execute/sync",
                Some(json!({"script": SHOWN_SCRIPT, "args": []})),
            )
            .map(as_string)
            .unwrap_or_else(|e| format!("<page text unavailable: {e}>"));
        panic!(
            "timed out after {timeout:?} waiting for {what} (at {}); the page showed: {shown:?}; console errors: {errors:?}; screenshot {shot}, page source {source}, console {console}",
            self.wd.current_url()
        );
    }

    /// Runs `script` as the body of a function (`return` gives the result) with `args` as
    /// `arguments`; pass elements with [`Element::as_arg`].
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.wd.cmd(
            "execute script",
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Saves a PNG of the viewport as `<name>.png` in the artifacts dir.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        self.try_screenshot(name)
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"))
    }

    fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let v = self
            .wd
            .call("GET", "/screenshot", None)
            .map_err(|e| e.to_string())?;
        let b64 = v.as_str().ok_or_else(|| format!("not a string: {v}"))?;
        let png = base64_decode(b64)?;
        let path = self.artifacts.join(format!("{}.png", sanitize(name)));
        std::fs::write(&path, png).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Accepts the open `alert`/`confirm`/`prompt` dialog, waiting up to 5 s for it to open.
    pub fn accept_alert(&self) {
        self.alert_cmd("accept alert", "POST", "/alert/accept");
    }

    /// Dismisses ("Cancel") the open dialog, waiting up to 5 s for it to open.
    pub fn dismiss_alert(&self) {
        self.alert_cmd("dismiss alert", "POST", "/alert/dismiss");
    }

    /// The open dialog's message, waiting up to 5 s for it to open.
    pub fn alert_text(&self) -> String {
        as_string(self.alert_cmd("get alert text", "GET", "/alert/text"))
    }

    /// The open dialog's message, `None` when no dialog is open.
    pub fn try_alert_text(&self) -> Option<String> {
        match self.wd.call("GET", "/alert/text", None) {
            Ok(v) => Some(as_string(v)),
            Err(e) if e.is_no_such_alert() => None,
            Err(e) => panic!("WebDriver get alert text failed: {e}"),
        }
    }

    fn alert_cmd(&self, what: &str, method: &str, path: &str) -> Value {
        let body = (method == "POST").then(|| json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.wd.call(method, path, body.clone()) {
                Ok(v) => return v,
                Err(e) if e.is_no_such_alert() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("WebDriver {what} ({method} {path}) failed: {e}"),
            }
        }
    }

    /// Deletes the session, kills and reaps chromedriver, then kills whatever process still
    /// runs from the scratch dir (there should be none: chromedriver quits the browser with
    /// the session). Never panics, never waits unboundedly.
    fn shutdown(&mut self) {
        if !self.wd.session.is_empty() {
            let path = format!("/session/{}", self.wd.session);
            if let Err(e) = request(
                &self.wd.net,
                self.wd.port,
                "DELETE",
                &path,
                None,
                Duration::from_secs(10),
            ) {
                eprintln!("webdriver: deleting the session: {e}");
            }
            self.wd.session.clear();
        }
        if let Some(mut child) = self.child.take()
            && !super::stop_child(&mut child, Duration::from_secs(5))
        {
            eprintln!(
                "webdriver: chromedriver (pid {}) not reaped after 5 s",
                child.id()
            );
        }
        // The browser's processes exit on their own shortly after the session's deletion;
        // give them a moment, then kill what is left.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = processes_naming(&self.scratch);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            left = processes_naming(&self.scratch);
        }
        if !left.is_empty() {
            eprintln!("webdriver: killing browser processes left running: {left:?}");
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(left.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while !processes_naming(&self.scratch).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An element reference of a [`Browser`]'s session (it does not keep the browser alive).
#[derive(Debug, Clone)]
pub struct Element {
    wd: Wd,
    id: String,
    /// The selector it was found by, for messages.
    css: String,
}

impl Element {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{}", self.id, tail)
    }

    fn cmd(&self, what: &str, method: &str, tail: &str, body: Option<Value>) -> Value {
        self.wd.cmd(
            &format!("{what} on `{}`", self.css),
            method,
            &self.path(tail),
            body,
        )
    }

    fn try_cmd(&self, what: &str, method: &str, tail: &str) -> Option<Value> {
        match self.wd.call(method, &self.path(tail), None) {
            Ok(v) => Some(v),
            Err(e) if e.is_stale() => None,
            Err(e) => panic!(
                "WebDriver {what} on `{}` ({method} {}) failed: {e}",
                self.css,
                self.path(tail)
            ),
        }
    }

    /// The W3C reference, e.g. as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    pub fn click(&self) {
        self.cmd("click", "POST", "/click", Some(json!({})));
    }

    /// Clicks, or returns false when the element is stale (its page re-rendered it): for
    /// pages that redraw themselves as events arrive.
    pub fn try_click(&self) -> bool {
        match self.wd.call("POST", &self.path("/click"), Some(json!({}))) {
            Ok(_) => true,
            Err(e) if e.is_stale() => false,
            Err(e) => panic!("WebDriver click on `{}` failed: {e}", self.css),
        }
    }

    /// Types `text` into the element (focusing it first), after what it already holds.
    pub fn send_keys(&self, text: &str) {
        self.cmd("send keys", "POST", "/value", Some(json!({ "text": text })));
    }

    pub fn clear(&self) {
        self.cmd("clear", "POST", "/clear", Some(json!({})));
    }

    /// The rendered text (as a user sees it: whitespace collapsed, hidden parts left out).
    pub fn text(&self) -> String {
        as_string(self.cmd("get text", "GET", "/text", None))
    }

    /// The rendered text, or `None` when the element is stale (its page re-rendered it or
    /// navigated away): for polling pages that update themselves.
    pub fn try_text(&self) -> Option<String> {
        self.try_cmd("get text", "GET", "/text").map(as_string)
    }

    /// The attribute (or, for some like `value`/`checked`, the property) as a string.
    pub fn attr(&self, name: &str) -> Option<String> {
        match self.cmd(
            &format!("get attribute {name}"),
            "GET",
            &format!("/attribute/{}", path_escape(name)),
            None,
        ) {
            Value::Null => None,
            v => Some(as_string(v)),
        }
    }

    /// The DOM property (e.g. `value` of an input, `checked`, `selectedIndex`).
    pub fn property(&self, name: &str) -> Value {
        self.cmd(
            &format!("get property {name}"),
            "GET",
            &format!("/property/{}", path_escape(name)),
            None,
        )
    }

    pub fn tag_name(&self) -> String {
        as_string(self.cmd("get tag name", "GET", "/name", None))
    }

    pub fn is_displayed(&self) -> bool {
        self.cmd("is displayed", "GET", "/displayed", None) == Value::Bool(true)
    }

    /// `None` when the element is stale.
    pub fn try_is_displayed(&self) -> Option<bool> {
        self.try_cmd("is displayed", "GET", "/displayed")
            .map(|v| v == Value::Bool(true))
    }

    pub fn is_enabled(&self) -> bool {
        self.cmd("is enabled", "GET", "/enabled", None) == Value::Bool(true)
    }

    pub fn is_selected(&self) -> bool {
        self.cmd("is selected", "GET", "/selected", None) == Value::Bool(true)
    }

    /// For a `<select>`: clicks the `<option>` whose value is `value_or_text`, or else the
    /// first whose text (trimmed) is.
    pub fn select_option(&self, value_or_text: &str) {
        let options = self.find_all("option");
        let described: Vec<(String, String)> = options
            .iter()
            .map(|o| {
                (
                    as_string(o.property("value")),
                    as_string(o.property("text")).trim().to_string(),
                )
            })
            .collect();
        let wanted = value_or_text.trim();
        let at = described
            .iter()
            .position(|(v, _)| v == value_or_text)
            .or_else(|| described.iter().position(|(_, t)| t == wanted));
        match at {
            Some(i) => options[i].click(),
            None => panic!(
                "`{}` has no option with value or text {value_or_text:?}; options (value, text): {described:?}",
                self.css
            ),
        }
    }

    /// The first element matching `css` within this one; panics with the page source's tail
    /// if none.
    pub fn find(&self, css: &str) -> Element {
        let mut e = self.wd.find(&self.path(""), css);
        e.css = format!("{} {css}", self.css);
        e
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let mut all = self.wd.find_all(&self.path(""), css);
        for e in &mut all {
            e.css = format!("{} {css}", self.css);
        }
        all
    }

    pub fn try_find(&self, css: &str) -> Option<Element> {
        let mut e = self.wd.try_find(&self.path(""), css)?;
        e.css = format!("{} {css}", self.css);
        Some(e)
    }
}

fn as_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Percent-encodes what is not unreserved, for a path segment.
fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file-name-safe version of `s`: ASCII letters, digits, `.`, `_` and `-`, other runs as
/// one `-`, at most 100 characters.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches(['-', '.']).chars().take(100).collect();
    if out.is_empty() {
        "unnamed".into()
    } else {
        out
    }
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, c) in s.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x} at {i}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// A new directory of its own under the system's temp dir (removed by [`Browser::shutdown`]).
fn unique_scratch_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("novacron-chromium-")
        .tempdir()
        .map(tempfile::TempDir::keep)
        .unwrap_or_else(|e| panic!("creating the browser's scratch dir: {e}"))
}

/// `dir/stem.ext`, or `dir/stem-2.ext`, … the first that does not exist yet.
fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.{ext}"));
    let mut n = 1;
    while p.exists() {
        n += 1;
        p = dir.join(format!("{stem}-{n}.{ext}"));
    }
    p
}

/// Live (non-zombie) processes whose command line contains `dir`.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out = vec![];
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

/// One HTTP/1.1 exchange with chromedriver on 127.0.0.1:`port`, returning the answer's
/// `value` (or its WebDriver error).
fn request(
    net: &Netns,
    port: u16,
    method: &str,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> Result<Value, WebDriverError> {
    let t = |e: std::io::Error| WebDriverError::transport(format!("{method} {path}: {e}"));
    let mut stream = net
        .connect_loopback(port, Duration::from_secs(5))
        .map_err(t)?;
    stream.set_read_timeout(Some(timeout)).map_err(t)?;
    stream.set_write_timeout(Some(timeout)).map_err(t)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    if method == "POST" {
        req.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    req.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(req.as_bytes()).map_err(t)?;
    let (status, raw) = read_response(BufReader::new(stream)).map_err(t)?;
    let text = String::from_utf8_lossy(&raw);
    let parsed: Value = serde_json::from_str(&text).map_err(|e| {
        WebDriverError::transport(format!(
            "{method} {path}: HTTP {status} with a body that is not JSON ({e}): {}",
            text.chars().take(500).collect::<String>()
        ))
    })?;
    let value = match parsed {
        Value::Object(mut m) => m.remove("value").unwrap_or(Value::Null),
        other => other,
    };
    let error = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string);
    match error {
        Some(error) => Err(WebDriverError {
            status,
            error,
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
        None if status >= 400 => Err(WebDriverError {
            status,
            error: "unknown error".into(),
            message: value.to_string(),
        }),
        None => Ok(value),
    }
}

/// Reads one HTTP/1.1 response: the status code and the body (by `Content-Length`, chunked,
/// or up to the end of the connection).
fn read_response(mut r: impl BufRead) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let mut body = vec![];
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line (or the end of the connection).
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((status, body))
}
