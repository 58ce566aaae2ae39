//! Helpers shared by the integration tests: the real server on a loopback
//! port, an HTTP client, polling until something holds, `/metrics` lines.
#![allow(dead_code)] // each test binary uses its own share of these

pub mod terminal;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

/// A child process killed (and reaped) when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `signalbox serve` on a random loopback port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// SIGTERM, then the exit status (the server drains and closes).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("the server exits")
    }
}

pub fn serve(dir: &Path, extra: &[&str]) -> Server {
    serve_with_config(dir, extra, None)
}

/// Starts the server on `dir`, with `config` as its config.toml if given
/// (kept beside the data, so no user config leaks in).
pub fn serve_with_config(dir: &Path, extra: &[&str], config: Option<&str>) -> Server {
    let config_home = dir.with_extension("config");
    if let Some(text) = config {
        std::fs::create_dir_all(config_home.join("signalbox")).unwrap();
        std::fs::write(config_home.join("signalbox").join("config.toml"), text).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", &config_home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    listening(child, dir.to_path_buf())
}

/// `signalbox serve --config DEPLOYMENT` on a random loopback port, with
/// `extra` flags; its data where the deployment says (`data` inside it).
pub fn serve_deployment(deployment: &Path, extra: &[&str]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(deployment)
        .args(extra)
        .env("HOME", deployment)
        .env_remove("SIGNALBOX_TOKENS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    listening(child, deployment.join("data"))
}

/// The server once it says where it listens (its first line).
fn listening(mut child: Child, dir: PathBuf) -> Server {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server {
        child,
        base: format!("http://{addr}"),
        dir,
    }
}

/// POSTs one structured-mode event with a bearer token; it must be taken.
pub fn post_as(c: &Client, base: &str, token: &str, event: &Value) {
    let r = c
        .post(format!("{base}/v1/signals"))
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
}

/// Python's own HTTP server on loopback (tests/clients/receiver.py),
/// logging each POST as a JSON line to `log`; HTTPS with `tls` (a
/// certificate and its key). Its port.
pub fn receiver(tls: Option<(&Path, &Path)>, log: &Path) -> (Kill, u16) {
    let plain = (Path::new("-"), Path::new("-"));
    let (cert, key) = tls.unwrap_or(plain);
    python_server(
        "receiver.py",
        &[cert.as_os_str(), key.as_os_str(), log.as_os_str()],
    )
}

/// Starts `tests/clients/SCRIPT ARGS…`, a server that prints the port it
/// listens on first; the process (killed when dropped) and that port.
pub fn python_server(script: &str, args: &[&std::ffi::OsStr]) -> (Kill, u16) {
    let mut child = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/clients")
                .join(script),
        )
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{script}: no port in {line:?}"));
    (Kill(child), port)
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `signalbox init DIR`: the starter deployment, written or the test fails.
pub fn init(dir: &Path) {
    succeeds([std::ffi::OsStr::new("init"), dir.as_os_str()]);
    // The model `on` from the first signal instead of the starter's
    // apprentice mode: these tests are about what the model's reviews and
    // answers do, which the rules alone would not ask.
    let path = dir.join("policies.toml");
    let text = std::fs::read_to_string(&path).expect("init wrote policies.toml");
    let anchor = "mode = \"apprentice\"";
    assert!(text.contains(anchor), "the starter is in apprentice mode");
    std::fs::write(&path, text.replace(anchor, "mode = \"on\""))
        .expect("policies.toml is writable");
}

/// `signalbox run --headless` for `duration` of seed `seed` at full speed,
/// journaling into `data`: its JSON report, or the test fails.
pub fn headless(data: &Path, seed: u64, duration: &str) -> Value {
    let seed = seed.to_string();
    json_of(
        ["run", "--headless", "--seed", &seed, "--duration", duration]
            .into_iter()
            .chain(["--speed", "max", "--report", "json", "--data-dir"])
            .map(std::ffi::OsStr::new)
            .chain([data.as_os_str()]),
    )
}

/// What `signalbox ARGS` prints as JSON; it must succeed.
pub fn json_of<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> Value {
    serde_json::from_slice(&succeeds(args).stdout).expect("the output is JSON")
}

/// `signalbox ARGS`, which must succeed (else the test fails with its
/// arguments and what it said on stderr).
pub fn succeeds<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> std::process::Output {
    let args: Vec<&std::ffi::OsStr> = args.into_iter().collect();
    let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signalbox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A port free now, never one this test process handed out before: the
/// system may give a port just released again, and a cluster's NATS
/// server and node once got the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A structured-mode CloudEvent from the `test` source.
pub fn event(id: &str, kind: &str, subject: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "test", "type": kind, "subject": subject, "data": data})
}

/// Polls `f` every 20 ms until it gives a value; fails after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let began = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(began.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// POSTs one structured-mode event; the response.
pub fn post_event(c: &Client, base: &str, event: &Value) -> reqwest::blocking::Response {
    c.post(format!("{base}/v1/signals"))
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .unwrap()
}

/// What `GET /v1/signals/{id}` says once the signal is no longer pending:
/// decided or quarantined.
pub fn settled(c: &Client, base: &str, id: &str) -> Value {
    settled_with(c, base, id, None)
}

/// `settled`, asking with a bearer token.
pub fn settled_with(c: &Client, base: &str, id: &str, token: Option<&str>) -> Value {
    wait_for(
        &format!("signal {id} to be decided"),
        Duration::from_secs(20),
        || {
            let mut request = c.get(format!("{base}/v1/signals/{id}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let r = request.send().unwrap();
            match r.status().as_u16() {
                200 => Some(r.json::<Value>().unwrap()),
                404 => None,
                other => panic!("GET /v1/signals/{id}: {other} {}", r.text().unwrap()),
            }
        },
    )
}

/// Waits until the engine has decided the signal; its decision's id.
pub fn decided(c: &Client, base: &str, id: &str) -> String {
    let v = settled(c, base, id);
    assert_eq!(v["state"], "decided", "{v}");
    v["decision"].as_str().unwrap().to_string()
}

pub fn metrics_text(c: &Client, base: &str) -> String {
    c.get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// The value of one line of `/metrics` (0 when absent).
pub fn metric(c: &Client, base: &str, name: &str) -> f64 {
    metrics_text(c, base)
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Waits until the engine has decided everything the intake log holds.
pub fn drained(c: &Client, base: &str) {
    wait_for("the engine to catch up", Duration::from_secs(60), || {
        (metric(c, base, "signalbox_intake_backlog ") == 0.0).then_some(())
    })
}

/// The engine on a journal in `dir`, over the Northwind world (seed 1),
/// its clock at the simulator's start.
pub fn engine(dir: &Path) -> signalbox::engine::Engine {
    use rand::SeedableRng;
    let start = signalbox::sim::default_start();
    let world =
        signalbox::sim::world::northwind(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1), start);
    signalbox::engine::Engine::open(signalbox::sim::engine_config(dir, 1), world, start)
        .expect("the engine opens its journal")
}

/// A CloudEvent from source `test`, at the simulator's start.
pub fn signal(id: &str, kind: &str, subject: &str, data: Value) -> signalbox::signal::Signal {
    let start = signalbox::sim::default_start();
    let text = json!({
        "specversion": "1.0", "id": id, "source": "test", "type": kind,
        "subject": subject, "time": start.to_rfc3339(), "data": data,
    })
    .to_string();
    signalbox::signal::Signal::from_json(&text, start).expect("test signal parses")
}

/// The engine with one open review item (a finance approval of `amount`
/// from a known vendor), committed; with the item's id.
pub fn engine_with_item(dir: &Path, amount: f64) -> (signalbox::engine::Engine, String) {
    let mut engine = engine(dir);
    let s = signal(
        "ap-9",
        "approval.requested",
        "approval/9",
        json!({"amount": amount, "known_vendor": true}),
    );
    engine.ingest(s, signalbox::sim::default_start());
    engine.flush().unwrap().wait().unwrap();
    let id = engine.open_reviews()[0].id.clone();
    (engine, id)
}

/// Signals the engine ignored as repeats, from `/metrics`: the sum over
/// every type.
pub fn duplicates(c: &Client, base: &str) -> f64 {
    metrics_text(c, base)
        .lines()
        .filter(|l| {
            l.starts_with("signalbox_signals_total{") && l.contains("outcome=\"duplicate\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Whether a signal is durable: still in the intake log, or already in the
/// journal (read over connections of their own, as another process would).
pub fn durable(dir: &Path, id: &str) -> bool {
    let count = |file: &str, sql: &str| -> i64 {
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        conn.query_row(sql, [id], |r| r.get(0)).unwrap()
    };
    count(
        "intake.db",
        "SELECT COUNT(*) FROM intake WHERE json_extract(body, '$.id') = ?1",
    ) + count("signalbox.db", "SELECT COUNT(*) FROM signals WHERE id = ?1")
        > 0
}

/// The starter with dana (a signed webhook) on call alone, emil (Slack)
/// as the second level, each level given `after`.
pub fn paged_deployment(dir: &Path, dana: u16, emil: u16, after: &str) {
    init(dir);
    let org = std::fs::read_to_string(dir.join("organization.toml")).unwrap();
    let org = org
        .replace(
            "contact = { slack = \"https://hooks.slack.com/services/T000/B000/dana\", email = \"dana@example.com\" }\nurgent = [\"slack\", \"email after 2m\"]",
            &format!("contact = {{ webhook = \"http://127.0.0.1:{dana}/dana\" }}\nurgent = [\"webhook\"]"),
        )
        .replace(
            "contact = { slack = \"https://hooks.slack.com/services/T000/B000/emil\", email = \"emil@example.com\" }\nurgent = [\"slack\", \"email after 2m\"]",
            &format!("contact = {{ slack = \"http://127.0.0.1:{emil}/emil\" }}\nurgent = [\"slack\"]"),
        )
        .replace("low = [\"email\"]\n", "")
        .replace("members = [\"dana\", \"emil\"]", "members = [\"dana\"]")
        .replace("repeats = 1", "repeats = 0")
        .replace(
            "targets = [\"schedule:sre-primary\"]\nafter = \"5m\"",
            &format!("targets = [\"schedule:sre-primary\"]\nafter = \"{after}\""),
        )
        .replace(
            "targets = [\"team:sre\", \"person:dana\", \"person:emil\"]\nafter = \"10m\"",
            &format!("targets = [\"person:emil\"]\nafter = \"{after}\""),
        );
    assert!(org.contains(&format!("127.0.0.1:{dana}")) && org.contains("person:emil\"]"));
    std::fs::write(dir.join("organization.toml"), org).unwrap();
}

/// A real language model server on loopback: llama.cpp's `llama-server`
/// with SmolLM2-135M-Instruct, as `.ci/llama` builds and caches them
/// (`SIGNALBOX_LLAMA_DIR`, else `~/.cache/signalbox/llama`). The process
/// (killed when dropped) and its port, once it answers `/health`.
pub fn llama_server() -> (Kill, u16) {
    let dir = std::env::var_os("SIGNALBOX_LLAMA_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/signalbox/llama")))
        .expect("SIGNALBOX_LLAMA_DIR or HOME");
    let server = dir.join("llama-server");
    let weights = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        server.exists() && weights.exists(),
        "no llama-server and SmolLM2 weights in {}: run .ci/llama (it builds them once)",
        dir.display()
    );
    let port = free_port();
    let child = Command::new(server)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-t", "2", "-c", "4096", "-np", "1", "-m"])
        .arg(weights)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("llama-server starts");
    let kill = Kill(child);
    let c = client();
    wait_for("llama-server to load", Duration::from_secs(60), || {
        c.get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .ok()
            .filter(|r| r.status() == 200)
    });
    (kill, port)
}

/// `promtool check metrics` (Prometheus's own) on `text`: what it said.
pub fn promtool(text: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus) must be installed");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    promtool.wait_with_output().unwrap()
}
