//! Cluster mode on one machine: three real `nats-server`s (Debian's, in a
//! JetStream cluster) and three `signalbox serve --cluster` nodes on
//! loopback, under load from two senders that retry on another node when
//! one does not answer. After each blow (kill -9 of a node, of another
//! after the first rejoined, SIGSTOP of an owner past its lease, kill -9
//! of a NATS server, a restart of all six, one signal posted to two
//! nodes), the record is read back from the decision stream (`signalbox
//! cluster check`, which rebuilds every partition as a taking node does):
//! every acknowledged (source, id) is decided exactly once.

use crate::common::{self, Kill};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NODES: usize = 3;

struct Nats {
    ports: Vec<u16>,
    routes: Vec<u16>,
    dir: PathBuf,
}

impl Nats {
    fn new(dir: &Path) -> Nats {
        let bin = "nats-server";
        assert!(
            Command::new(bin).arg("--version").output().is_ok(),
            "{bin} must be installed (.ci/run installs the Debian package nats-server)"
        );
        Nats {
            ports: (0..NODES).map(|_| common::free_port()).collect(),
            routes: (0..NODES).map(|_| common::free_port()).collect(),
            dir: dir.to_path_buf(),
        }
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start(&self, i: usize) -> Kill {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let conf = self.dir.join(format!("n{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n\
                 cluster {{ name: sb, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                self.ports[i],
                self.dir.join(format!("js{i}")),
                self.routes[i],
                routes.join(", ")
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join(format!("n{i}.log"))).unwrap();
        Kill(
            Command::new("nats-server")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }
}

struct Cluster {
    nats: Nats,
    deployment: PathBuf,
    data: PathBuf,
    ports: Vec<u16>,
}

impl Cluster {
    fn start_node(&self, i: usize) -> Kill {
        let log = std::fs::File::create(self.data.join(format!("s{i}.out"))).unwrap();
        Kill(
            Command::new(env!("CARGO_BIN_EXE_signalbox"))
                .args(["serve", "--config"])
                .arg(&self.deployment)
                .arg("--data-dir")
                .arg(&self.data)
                .args(["--listen", &format!("127.0.0.1:{}", self.ports[i])])
                // The servers from the deployment's `[cluster]`.
                .args(["--node", &format!("s{i}")])
                // Snapshots often, so that takeovers read one and its tail.
                .env("SIGNALBOX_CLUSTER_SNAPSHOT_EVERY", "25")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    /// The nodes' log (they share the data directory's).
    fn log(&self) -> String {
        let Ok(files) = self.data.join("logs").read_dir() else {
            return String::new();
        };
        files
            .flatten()
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect()
    }

    fn view(&self, i: usize) -> Option<Value> {
        common::client()
            .get(format!("http://127.0.0.1:{}/v1/cluster", self.ports[i]))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?
            .json()
            .ok()
    }

    /// Waits until the live nodes run every partition between them, each
    /// once; how long that took.
    fn settled(&self, live: &[usize], within: Duration) -> Duration {
        let began = Instant::now();
        common::wait_for("every partition to run on a live node", within, || {
            let mut owned = Vec::new();
            for &i in live {
                let view = self.view(i)?;
                owned.extend(view["owned"].as_array()?.iter().filter_map(Value::as_u64));
            }
            owned.sort_unstable();
            (owned == (0..16).collect::<Vec<u64>>()).then_some(())
        });
        began.elapsed()
    }

    /// What the decision stream says was decided, as `source id` pairs,
    /// the signals decided more than once, and what the check said on
    /// standard error (empty when it read the record).
    fn record(&self) -> (BTreeSet<String>, Vec<String>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(["cluster", "check", "--list", "--cluster", &self.nats.urls()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let repeated = text
            .lines()
            .filter(|l| l.trim_start().starts_with("repeated:"))
            .map(String::from)
            .collect();
        // SOURCE ID TIME lines after the summary.
        let decided = text
            .lines()
            .skip(1)
            .filter(|l| !l.trim_start().starts_with("repeated:"))
            .filter_map(|l| {
                let mut fields = l.split(' ');
                Some(format!("{} {}", fields.next()?, fields.next()?))
            })
            .collect();
        (
            decided,
            repeated,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// Every acknowledged signal is decided exactly once (waiting for the
    /// partitions to catch up).
    fn exactly_once(&self, acked: &BTreeSet<String>, what: &str) {
        let mut last = (BTreeSet::new(), Vec::new(), String::new());
        let began = Instant::now();
        // After a NATS server is killed, its streams elect new leaders and
        // partitions restart; beside the rest of the suite on two cores
        // that took over a minute once.
        while began.elapsed() < Duration::from_secs(180) {
            last = self.record();
            if acked.is_subset(&last.0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let (decided, repeated, said) = last;
        let missing: Vec<&String> = acked.difference(&decided).take(5).collect();
        if !missing.is_empty() {
            let log = self.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains(" INFO ") || l.contains("lease") || l.contains("retain"))
                .collect();
            eprintln!(
                "the nodes' log, warnings and leases:\n{}",
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
        assert!(
            missing.is_empty(),
            "{what}: acknowledged and not decided: {missing:?} (of {}; {} decided; the check said: {said})",
            acked.difference(&decided).count(),
            decided.len()
        );
        assert!(
            repeated.is_empty(),
            "{what}: decided more than once: {repeated:?}"
        );
        println!(
            "{what}: {} acknowledged, every one decided once ({} decided in all)",
            acked.len(),
            decided.len()
        );
    }
}

/// Sends `n` tickets named `prefix…` from two threads, each to a node
/// round-robin and, when one does not answer 202, to the next; returns
/// what was acknowledged (as `source id`).
fn load(
    ports: Vec<u16>,
    prefix: &'static str,
    n: usize,
) -> std::thread::JoinHandle<BTreeSet<String>> {
    std::thread::spawn(move || {
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let senders: Vec<_> = (0..2)
            .map(|k| {
                let (ports, acked) = (ports.clone(), Arc::clone(&acked));
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(6))
                        .build()
                        .unwrap();
                    for i in (k..n).step_by(2) {
                        let id = format!("{prefix}{i}");
                        let event = json!({"specversion": "1.0", "id": id, "source": "test/load",
                            "type": "ticket.opened", "subject": format!("ticket/{prefix}{}", i % 97),
                            "data": {"ticket": id}});
                        for attempt in 0..100 {
                            let port = ports[(i + attempt) % ports.len()];
                            let sent = client
                                .post(format!("http://127.0.0.1:{port}/v1/signals"))
                                .header("content-type", "application/cloudevents+json")
                                .body(event.to_string())
                                .send();
                            if sent.is_ok_and(|r| r.status() == 202) {
                                acked.lock().unwrap().insert(format!("test/load {id}"));
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().unwrap();
        }
        Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
    })
}

/// `[cluster] servers` in the deployment's signalbox.toml.
fn cluster_section(deployment: &Path, urls: &str) {
    let path = deployment.join("signalbox.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let servers: Vec<String> = urls.split(',').map(|u| format!("{u:?}")).collect();
    text.push_str(&format!(
        "\n[cluster]\nservers = [{}]\n",
        servers.join(", ")
    ));
    std::fs::write(&path, text).unwrap();
}

#[test]
fn a_node_without_a_name_or_servers_is_refused_naming_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let deployment = tmp.path().join("deploy");
    common::init(&deployment);
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_signalbox"))
            .args(["serve", "--config"])
            .arg(&deployment)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = serve(&["--node", "a"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--node needs --cluster or `[cluster] servers`"),
        "{err}"
    );
    let out = serve(&["--cluster", "http://h1:4222", "--node", "a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("must be nats://HOST:PORT"),
        "{err}"
    );
    cluster_section(&deployment, "nats://127.0.0.1:1");
    let out = serve(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("`[cluster] node`"),
        "{err}"
    );
}

fn stop_signal(pid: u32, signal: &str) {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn acknowledged_signals_are_decided_exactly_once_whatever_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let nats = Nats::new(dir);
    let mut servers: Vec<Option<Kill>> = (0..NODES).map(|i| Some(nats.start(i))).collect();
    let deployment = dir.join("deploy");
    common::init(&deployment);
    cluster_section(&deployment, &nats.urls());
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cluster = Cluster {
        nats,
        deployment,
        data,
        ports: (0..NODES).map(|_| common::free_port()).collect(),
    };
    let mut nodes: Vec<Option<Kill>> = (0..NODES).map(|i| Some(cluster.start_node(i))).collect();
    cluster.settled(&[0, 1, 2], Duration::from_secs(60));
    let mut acked = BTreeSet::new();

    // kill -9 a node under load; then another once the first is back.
    for (victim, prefix) in [(1, "a"), (0, "b")] {
        let sending = load(cluster.ports.clone(), prefix, 600);
        std::thread::sleep(Duration::from_secs(2));
        nodes[victim] = None;
        let live: Vec<usize> = (0..NODES).filter(|&i| i != victim).collect();
        let took = cluster.settled(&live, Duration::from_secs(30));
        println!("kill -9 s{victim}: its partitions run again on {live:?} after {took:?}");
        acked.extend(sending.join().unwrap());
        cluster.exactly_once(&acked, &format!("after kill -9 of s{victim}"));
        nodes[victim] = Some(cluster.start_node(victim));
        cluster.settled(&[0, 1, 2], Duration::from_secs(60));
    }

    // An owner paused past its lease, then resumed: its appends are refused.
    let paused = nodes[2].as_ref().unwrap().0.id();
    let sending = load(cluster.ports.clone(), "c", 600);
    std::thread::sleep(Duration::from_secs(1));
    stop_signal(paused, "-STOP");
    let took = cluster.settled(&[0, 1], Duration::from_secs(30));
    println!("SIGSTOP s2: its partitions run again on [0, 1] after {took:?}");
    std::thread::sleep(Duration::from_secs(2));
    stop_signal(paused, "-CONT");
    acked.extend(sending.join().unwrap());
    cluster.exactly_once(&acked, "after SIGSTOP and SIGCONT of an owner");
    assert!(
        cluster.log().contains("giving the partition up"),
        "the resumed owner saw its leases gone"
    );
    cluster.settled(&[0, 1, 2], Duration::from_secs(60));

    // kill -9 of one NATS server under load.
    let sending = load(cluster.ports.clone(), "d", 600);
    std::thread::sleep(Duration::from_secs(1));
    servers[0] = None;
    acked.extend(sending.join().unwrap());
    cluster.exactly_once(&acked, "after kill -9 of a NATS server");
    servers[0] = Some(cluster.nats.start(0));

    // The same signal posted to two nodes: one decision.
    let twice = json!({"specversion": "1.0", "id": "twice", "source": "test/load",
        "type": "ticket.opened", "subject": "ticket/twice", "data": {"ticket": "twice"}});
    for port in &cluster.ports[..2] {
        let answer = common::post_event(
            &common::client(),
            &format!("http://127.0.0.1:{port}"),
            &twice,
        );
        assert_eq!(answer.status(), 202);
    }
    acked.insert("test/load twice".into());
    cluster.exactly_once(&acked, "one signal posted to two nodes");

    // All six processes restarted.
    for node in &mut nodes {
        *node = None;
    }
    for server in &mut servers {
        *server = None;
    }
    let _servers: Vec<Kill> = (0..NODES).map(|i| cluster.nats.start(i)).collect();
    let _nodes: Vec<Kill> = (0..NODES).map(|i| cluster.start_node(i)).collect();
    // Three NATS servers re-forming their JetStream cluster and electing
    // every stream's leader on two loaded cores took from 15 to 56 s.
    let took = cluster.settled(&[0, 1, 2], Duration::from_secs(180));
    println!("all six restarted: every partition runs after {took:?}");
    acked.extend(load(cluster.ports.clone(), "e", 300).join().unwrap());
    cluster.exactly_once(&acked, "after restarting all six processes");
    assert!(
        cluster.log().contains("snapshot stored"),
        "partitions were snapshot"
    );
}
