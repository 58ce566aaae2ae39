//! The cluster tests' harness: real `nats-server`s (Debian's) and
//! `signalbox serve --cluster` nodes on loopback, the record read back with
//! `signalbox cluster check`, and a load that retries on another node.

use crate::common::{self, Kill};

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub(crate) struct Nats {
    /// A token every client must give (`authorization { token }`).
    pub(crate) token: Option<String>,
    ports: Vec<u16>,
    routes: Vec<u16>,
    dir: PathBuf,
}

impl Nats {
    /// `servers` NATS servers (one: JetStream alone; more: a JetStream
    /// cluster of them), not started yet.
    pub(crate) fn new(dir: &Path, servers: usize) -> Nats {
        let bin = "nats-server";
        assert!(
            Command::new(bin).arg("--version").output().is_ok(),
            "{bin} must be installed (.ci/run installs the Debian package nats-server)"
        );
        Nats {
            token: None,
            ports: (0..servers).map(|_| common::free_port()).collect(),
            routes: (0..servers).map(|_| common::free_port()).collect(),
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn start(&self, i: usize) -> Kill {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let conf = self.dir.join(format!("n{i}.conf"));
        let mut text = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n",
            self.ports[i],
            self.dir.join(format!("js{i}")),
        );
        if let Some(token) = &self.token {
            text.push_str(&format!("authorization {{ token: {token:?} }}\n"));
        }
        if self.ports.len() > 1 {
            text.push_str(&format!(
                "cluster {{ name: sb, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                self.routes[i],
                routes.join(", ")
            ));
        }
        std::fs::write(&conf, text).unwrap();
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

pub(crate) struct Cluster {
    pub(crate) nats: Nats,
    pub(crate) deployment: PathBuf,
    pub(crate) data: PathBuf,
    /// Each node's HTTP port.
    pub(crate) ports: Vec<u16>,
    /// The token `/v1/cluster` is read with, where the deployment has
    /// tokens.
    pub(crate) token: Option<String>,
}

impl Cluster {
    /// A deployment from `init` whose `[cluster]` names `servers` NATS
    /// servers (started, returned) and `nodes` nodes (not started yet).
    pub(crate) fn new(dir: &Path, servers: usize, nodes: usize) -> (Cluster, Vec<Option<Kill>>) {
        let nats = Nats::new(dir, servers);
        let started = (0..servers).map(|i| Some(nats.start(i))).collect();
        let deployment = dir.join("deploy");
        common::init(&deployment);
        cluster_section(&deployment, &nats.urls());
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let cluster = Cluster {
            nats,
            deployment,
            data,
            ports: (0..nodes).map(|_| common::free_port()).collect(),
            token: None,
        };
        (cluster, started)
    }

    /// Node `i`'s address.
    pub(crate) fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Node `i`, started; what it prints goes to `s{i}.out`, after what it
    /// printed before a restart (a panic's lines outlive the restart).
    pub(crate) fn start_node(&self, i: usize) -> Kill {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join(format!("s{i}.out")))
            .unwrap();
        writeln!(log, "--- s{i} started").unwrap();
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
    pub(crate) fn log(&self) -> String {
        let Ok(files) = self.data.join("logs").read_dir() else {
            return String::new();
        };
        files
            .flatten()
            .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
            .collect()
    }

    pub(crate) fn view(&self, i: usize) -> Option<Value> {
        let mut asked = common::client()
            .get(format!("http://127.0.0.1:{}/v1/cluster", self.ports[i]))
            .timeout(Duration::from_secs(2));
        if let Some(token) = &self.token {
            asked = asked.bearer_auth(token);
        }
        asked.send().ok()?.json().ok()
    }

    /// Waits until the live nodes run every partition between them, each
    /// once, and each node some; how long that took.
    /// On a timeout, what each node said last and the log's warnings.
    pub(crate) fn settled(&self, live: &[usize], within: Duration) -> Duration {
        let began = Instant::now();
        let mut views = Vec::new();
        while began.elapsed() < within {
            views = live.iter().map(|&i| self.view(i)).collect();
            let owned = views.iter().map(|v| {
                let own = v.as_ref()?["owned"].as_array()?;
                Some(own.iter().filter_map(Value::as_u64).collect::<Vec<u64>>())
            });
            // A node that joined runs its own once they are handed back.
            let owned: Option<Vec<Vec<u64>>> = owned.collect();
            if let Some(owned) = owned
                && owned.iter().all(|own| !own.is_empty())
            {
                let mut all: Vec<u64> = owned.concat();
                all.sort_unstable();
                if all == (0..16).collect::<Vec<u64>>() {
                    return began.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = self.log();
        // Warnings, and what the nodes said of their partitions and leases.
        let warnings: Vec<&str> = (log.lines())
            .filter(|l| !l.contains(" INFO ") || l.contains("cluster::"))
            .filter(|l| !l.contains("journal commit failed") && !l.contains("intake::pager"))
            .collect();
        let outputs: Vec<String> = (live.iter())
            .map(|i| {
                let out = self.data.join(format!("s{i}.out"));
                let text = std::fs::read_to_string(out).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                // A panic's message, wherever it is, and the last lines.
                let panics: Vec<&str> = (lines.iter())
                    .filter(|l| l.contains("panicked") || l.starts_with("--- "))
                    .copied()
                    .collect();
                format!(
                    "s{i}: {}\n    last: {}",
                    panics.join("\n    "),
                    lines[lines.len().saturating_sub(12)..].join("\n    ")
                )
            })
            .collect();
        panic!(
            "timed out after {within:?} waiting for every partition to run on {live:?}; \
             they said {views:?}; the nodes' last lines:\n{}\nthe log's last warnings:\n{}",
            outputs.join("\n"),
            warnings[warnings.len().saturating_sub(80)..].join("\n")
        );
    }

    /// What the decision stream says was decided, as `source id` pairs,
    /// the signals decided more than once, and what the check said on
    /// standard error (empty when it read the record).
    pub(crate) fn record(&self) -> (BTreeSet<String>, Vec<String>, String) {
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
    pub(crate) fn exactly_once(&self, acked: &BTreeSet<String>, what: &str) {
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
                .filter(|l| !l.contains("intake::pager"))
                .collect();
            eprintln!(
                "the nodes' log, warnings and leases:\n{}",
                lines[lines.len().saturating_sub(150)..].join("\n")
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

impl Cluster {
    /// Every item of a list endpoint (an array, paged by its `Link`
    /// header) through node `i`; none while not every partition answers.
    pub(crate) fn list_all(&self, i: usize, path: &str) -> Option<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = Some(format!("{path}?limit=1000"));
        while let Some(at) = next.take() {
            let mut asked = common::client()
                .get(format!("http://127.0.0.1:{}{at}", self.ports[i]))
                .timeout(Duration::from_secs(10));
            if let Some(token) = &self.token {
                asked = asked.bearer_auth(token);
            }
            let answer = asked.send().ok()?;
            if answer.status() != 200 {
                return None;
            }
            next = answer
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| Some(l.strip_prefix('<')?.split('>').next()?.to_string()));
            items.extend(answer.json::<Vec<Value>>().ok()?);
        }
        Some(items)
    }

    /// Every acknowledged signal has its one task (a ticket's, or a paging
    /// alert's flow's), and every paging alert its one page (by subject),
    /// read through a live node within a minute.
    pub(crate) fn where_they_should_be(
        &self,
        live: &[usize],
        signals: usize,
        paged: &BTreeSet<String>,
        what: &str,
    ) {
        let mut last = (0, 0, Vec::new());
        let began = Instant::now();
        let settled = std::iter::repeat(())
            .take_while(|_| began.elapsed() < Duration::from_secs(60))
            .any(|_| {
                for &i in live {
                    let (Some(tasks), Some(pages)) =
                        (self.list_all(i, "/v1/tasks"), self.list_all(i, "/v1/pages"))
                    else {
                        continue;
                    };
                    let decisions: BTreeSet<&str> = tasks
                        .iter()
                        .filter_map(|t| t["decision"].as_str())
                        .collect();
                    let mut subjects: Vec<String> = pages
                        .iter()
                        .filter_map(|p| Some(p["subject"].as_str()?.to_string()))
                        .collect();
                    subjects.sort();
                    let expected: Vec<String> = paged.iter().cloned().collect();
                    if tasks.len() == signals && decisions.len() == signals && subjects == expected
                    {
                        return true;
                    }
                    last = (tasks.len(), decisions.len(), subjects);
                }
                std::thread::sleep(Duration::from_millis(300));
                false
            });
        assert!(
            settled,
            "{what}: tasks {} for {signals} signals ({} decisions), pages {:?} for {paged:?}",
            last.0, last.1, last.2
        );
        println!(
            "{what}: {signals} tasks, one per signal, and {} pages, one per alert",
            paged.len()
        );
    }
}

/// Sends `n` tickets named `prefix…` from two threads, each to a node
/// round-robin and, when one does not answer 202, to the next; returns
/// what was acknowledged (as `source id`).
pub(crate) fn load(
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
pub(crate) fn cluster_section(deployment: &Path, urls: &str) {
    let path = deployment.join("signalbox.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let servers: Vec<String> = urls.split(',').map(|u| format!("{u:?}")).collect();
    text.push_str(&format!(
        "\n[cluster]\nservers = [{}]\n",
        servers.join(", ")
    ));
    std::fs::write(&path, text).unwrap();
}
