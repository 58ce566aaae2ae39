//! Cluster mode on one machine: three real `nats-server`s (Debian's, in a
//! JetStream cluster) and three `signalbox serve --cluster` nodes on
//! loopback, under load from two senders that retry on another node when
//! one does not answer. After each blow (kill -9 of a node, of another
//! after the first rejoined, SIGSTOP of an owner past its lease, kill -9
//! of a NATS server, a restart of all six, one signal posted to two
//! nodes), the record is read back from the decision stream (`signalbox
//! cluster check`, which rebuilds every partition as a taking node does):
//! every acknowledged (source, id) is decided exactly once.

use crate::cluster_harness::{Cluster, cluster_section, load};
use crate::common::{self, Kill};

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

const NODES: usize = 3;

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

#[test]
fn a_node_proves_itself_to_nats_with_a_token_from_its_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nats = crate::cluster_harness::Nats::new(tmp.path(), 1);
    nats.token = Some("nats-token-0123".into());
    let _server = nats.start(0);
    let deployment = tmp.path().join("deploy");
    common::init(&deployment);
    cluster_section(&deployment, &nats.urls());
    let toml = deployment.join("signalbox.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!("{text}node = \"t1\"\ntoken_env = \"SB_TEST_NATS_TOKEN\"\n"),
    )
    .unwrap();
    let port = common::free_port();
    let serve = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_signalbox"));
        c.args(["serve", "--config"])
            .arg(&deployment)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        c
    };
    // Without the variable: refused at once, naming it.
    let out = serve().env_remove("SB_TEST_NATS_TOKEN").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("SB_TEST_NATS_TOKEN is not set"),
        "{err}"
    );
    // With it: the node runs every partition.
    let _node = Kill(
        serve()
            .env("SB_TEST_NATS_TOKEN", "nats-token-0123")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_for(
        "the node to run all 16 partitions",
        Duration::from_secs(60),
        || {
            let view: serde_json::Value = common::client()
                .get(format!("http://127.0.0.1:{port}/v1/cluster"))
                .send()
                .ok()?
                .json()
                .ok()?;
            (view["owned"].as_array()?.len() == 16).then_some(())
        },
    );
    // The record read back with the deployment's way in; without it the
    // check says the server refused it.
    let check = |token: Option<&str>, config: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_signalbox"));
        c.args(["cluster", "check"]);
        if config {
            c.arg("--config").arg(&deployment);
        } else {
            c.args(["--cluster", &nats.urls()]);
        }
        match token {
            Some(t) => c.env("SB_TEST_NATS_TOKEN", t),
            None => c.env_remove("SB_TEST_NATS_TOKEN"),
        };
        c.output().unwrap()
    };
    let out = check(Some("nats-token-0123"), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(None, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("authorization violation"),
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
    let (cluster, mut servers) = Cluster::new(dir, NODES, NODES);
    let mut nodes: Vec<Option<Kill>> = (0..NODES).map(|i| Some(cluster.start_node(i))).collect();
    cluster.settled(&[0, 1, 2], Duration::from_secs(60));
    let mut acked = BTreeSet::new();
    // Alerts that page, each on its own subject: one page each, wherever
    // their partitions go.
    let mut paged = BTreeSet::new();
    for i in 0..8 {
        let alert = json!({"specversion": "1.0", "id": format!("alert{i}"), "source": "test/alerts",
            "type": "alert.firing", "subject": format!("service/s{i}"), "severity": "critical",
            "data": {"service": format!("s{i}"), "alertname": "Down"}});
        let answer = common::post_event(&common::client(), &cluster.base(i % NODES), &alert);
        assert_eq!(answer.status(), 202);
        paged.insert(format!("service/s{i}"));
    }
    acked.extend(
        paged
            .iter()
            .map(|s| format!("test/alerts alert{}", &s["service/s".len()..])),
    );

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
        let what = format!("after kill -9 of s{victim}");
        cluster.where_they_should_be(&live, acked.len(), &paged, &what);
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
    let what = "after SIGSTOP and SIGCONT of an owner";
    cluster.where_they_should_be(&[0, 1], acked.len(), &paged, what);
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
    let what = "after kill -9 of a NATS server";
    cluster.where_they_should_be(&[0, 1, 2], acked.len(), &paged, what);
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
    let what = "after restarting all six processes";
    cluster.where_they_should_be(&[0, 1, 2], acked.len(), &paged, what);
    assert!(
        cluster.log().contains("snapshot stored"),
        "partitions were snapshot"
    );
}

/// One NATS server and one node, which has decided 200 tickets posted to
/// it (ids with `prefix`): the cluster, its servers, the node, and what
/// was acknowledged.
fn one_node_decided(
    dir: &std::path::Path,
    prefix: &'static str,
) -> (Cluster, Vec<Option<Kill>>, Kill, BTreeSet<String>) {
    let (cluster, servers) = Cluster::new(dir, 1, 1);
    let node = cluster.start_node(0);
    cluster.settled(&[0], Duration::from_secs(60));
    let acked = load(cluster.ports.clone(), prefix, 200).join().unwrap();
    cluster.exactly_once(&acked, "before the stream goes back");
    (cluster, servers, node, acked)
}

/// A signal stream that goes back under a running node (here: deleted and
/// made again, so its sequences are given anew, as servers that all lost
/// their unsynced tail give the lost ones): what is posted after is
/// decided, not skipped by cursors already past those sequences, and what
/// the node kept is published again and still decided once.
#[test]
fn a_stream_that_goes_back_under_running_partitions_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, _servers, _node, mut acked) = one_node_decided(tmp.path(), "f");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(remake_signal_stream(&cluster.nats.urls()));
    acked.extend(load(cluster.ports.clone(), "g", 100).join().unwrap());
    cluster.exactly_once(&acked, "after the stream went back");
    let log = cluster.log();
    assert!(
        log.contains("went back under a running partition"),
        "the partitions saw their stream go back"
    );
    // Asks to publish again are answered once they have been quiet for
    // 2 s, at most 10 s after the first (`tail::Asked`).
    common::wait_for(
        "the node's log to say it published again what it kept",
        Duration::from_secs(30),
        || {
            (cluster.log())
                .contains("published again what this node keeps")
                .then_some(())
        },
    );
}

/// Deletes the signal stream and makes it again as a node makes it, so its
/// sequences are given anew (as servers that all lost their unsynced tail
/// give the lost ones).
async fn remake_signal_stream(
    urls: &str,
) -> (async_nats::jetstream::Context, signalbox::cluster::Settings) {
    let client = async_nats::connect(urls).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream(signalbox::cluster::bus::SIGNALS)
        .await
        .unwrap();
    let settings = signalbox::cluster::Settings::parse(urls, "test").unwrap();
    signalbox::cluster::bus::Bus::connect(&settings)
        .await
        .unwrap();
    (js, settings)
}

/// Publishes a new ticket `k{i}` as a node does (a node that took it in
/// while the one under test was down); its `source id`.
async fn publish_new(
    js: &async_nats::jetstream::Context,
    settings: &signalbox::cluster::Settings,
    i: u64,
) -> String {
    let id = format!("k{i}");
    let event = json!({"specversion": "1.0", "id": id, "source": "test/load",
        "type": "ticket.opened", "subject": format!("ticket/k{}", i % 97),
        "data": {"ticket": id}});
    let signal = signalbox::signal::Signal::from_value(event, chrono::Utc::now()).unwrap();
    let partition = signalbox::cluster::partition_of(&signal, settings.partitions);
    publish(
        js,
        signalbox::cluster::bus::signal_subject(partition),
        serde_json::to_vec(&signal).unwrap(),
    )
    .await;
    format!("test/load {id}")
}

async fn publish(js: &async_nats::jetstream::Context, subject: String, body: Vec<u8>) {
    js.publish(subject, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

const NOT_READ_THERE: &str = "the message at the cursor is not the signal read there";

/// The signal stream goes back while no node runs its partitions, and new
/// signals are given the lost sequences before one does: each partition
/// starts with a cursor that is not past the stream's end but points at
/// another signal than the one it read. Those signals are decided, not
/// skipped.
#[test]
fn a_stream_that_went_back_before_a_partition_starts_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, _servers, node, mut acked) = one_node_decided(tmp.path(), "h");
    // A start over a stream that did not go back keeps its cursors.
    drop(node);
    let node = cluster.start_node(0);
    cluster.settled(&[0], Duration::from_secs(60));
    assert!(
        !cluster.log().contains(NOT_READ_THERE),
        "no rewind at a plain start"
    );
    drop(node);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (js, settings) = remake_signal_stream(&cluster.nats.urls()).await;
        // Published as a node publishes them (a node that took them in
        // while this one was down), into the sequences given again.
        for i in 0..300 {
            acked.insert(publish_new(&js, &settings, i).await);
        }
    });
    let _node = cluster.start_node(0);
    cluster.settled(&[0], Duration::from_secs(60));
    cluster.exactly_once(&acked, "after the stream went back");
    assert!(
        cluster.log().contains(NOT_READ_THERE),
        "the partitions saw it"
    );
}

/// After the stream went back, nodes publish again what they kept, under
/// new message ids, and such a copy can land on the very sequence a
/// partition's cursor names. It is a signal the journal holds, but not the
/// one read there: the partition still reads again all the stream holds,
/// and the new signals given the sequences below its cursor are decided.
#[test]
fn a_copy_published_again_at_a_cursor_does_not_pass_for_what_was_read_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, _servers, node, mut acked) = one_node_decided(tmp.path(), "c");
    drop(node);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let copies = runtime.block_on(async {
        // Per partition, from the stream as it was: where its cursor is
        // (its last message) and the first signal it read.
        let client = async_nats::connect(cluster.nats.urls()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js
            .get_stream(signalbox::cluster::bus::SIGNALS)
            .await
            .unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut partitions = std::collections::BTreeMap::new();
        for seq in 1..=last {
            let message = stream.get_raw_message(seq).await.unwrap();
            let payload = message.payload.to_vec();
            let (cursor, _, there) = partitions.entry(message.subject.to_string()).or_insert((
                seq,
                payload.clone(),
                Vec::new(),
            ));
            (*cursor, *there) = (seq, payload);
        }
        // At each cursor, a copy of the partition's first signal (where
        // that is not the one read there).
        let copies: std::collections::BTreeMap<u64, (String, Vec<u8>)> = partitions
            .into_iter()
            .filter(|(_, (_, first, there))| first != there)
            .map(|(subject, (cursor, first, _))| (cursor, (subject, first)))
            .collect();
        let (js, settings) = remake_signal_stream(&cluster.nats.urls()).await;
        let top = copies.keys().max().copied().unwrap_or(0);
        for seq in 1..=top + 20 {
            match copies.get(&seq) {
                Some((subject, copy)) => publish(&js, subject.clone(), copy.clone()).await,
                None => {
                    acked.insert(publish_new(&js, &settings, seq).await);
                }
            }
        }
        copies.len()
    });
    assert!(copies >= 4, "{copies} partitions read signals");
    let _node = cluster.start_node(0);
    cluster.settled(&[0], Duration::from_secs(60));
    cluster.exactly_once(&acked, "after copies landed on the cursors");
    assert!(
        cluster.log().contains(NOT_READ_THERE),
        "the partitions saw it"
    );
}
