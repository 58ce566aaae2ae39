//! A webhook executor behind HTTPS on loopback, its certificate signed by a
//! private CA given to the deployment as `[tls] ca_file`: the step is sent
//! over TLS, verified, and its 200 completes the flow. Without the CA the
//! same endpoint is refused, and the step falls back to people.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{client, event, serve_deployment, wait_for};
use serde_json::{Value, json};

const OPERATOR: &str = "op-secret-1";
const TOKENS: [&str; 2] = ["--token", "op-secret-1:operator:oskar"];

pub(crate) fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for 127.0.0.1 it signed.
pub(crate) fn certificates(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=signalbox test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
}

/// A starter deployment whose pages go to an HTTPS webhook, alerts forced to a page.
fn deployment(dir: &Path, port: u16, with_ca: bool) {
    common::init(dir);
    let edit = |name: &str, f: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        std::fs::write(dir.join(name), f(text)).unwrap();
    };
    edit("organization.toml", &|t| {
        t.replace(
            "runbook = \"manual\"",
            &format!("runbook = \"https://127.0.0.1:{port}/page\""),
        )
    });
    // Retries come quickly, so that a failing send reaches people soon.
    edit("signalbox.toml", &|t| {
        t.replace("retry_base = \"30s\"", "retry_base = \"1s\"")
    });
    if with_ca {
        edit("signalbox.toml", &|t| {
            format!("{t}\n[tls]\nca_file = \"../ca.pem\"\n")
        });
    }
    edit("policies.toml", &|t| {
        format!(
            "{t}\n[[rule]]\nid = \"page\"\ntypes = [\"alert.firing\"]\nwhen = \"true\"\nforce = \"page_oncall\"\nreason = \"test\"\n"
        )
    });
}

fn flow(c: &reqwest::blocking::Client, base: &str, signal: &str) -> Value {
    let d = common::settled_with(c, base, signal, Some(OPERATOR));
    let id = format!("F{}", &d["decision"].as_str().unwrap()[1..]);
    wait_for("the page step to end", Duration::from_secs(15), || {
        let f: Value = c
            .get(format!("{base}/v1/flows/{id}"))
            .bearer_auth(OPERATOR)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let step = &f["steps"][0];
        let ended = f["state"] == "done" || step["fallback"] == true;
        ended.then_some(f)
    })
}

#[test]
fn a_webhook_over_https_is_verified_against_the_given_ca() {
    let tmp = tempfile::tempdir().unwrap();
    certificates(tmp.path());
    let (cert, key) = (tmp.path().join("server.pem"), tmp.path().join("server.key"));
    let (_receiver, port) =
        common::receiver(Some((&cert, &key)), &tmp.path().join("received.jsonl"));
    let c = client();
    let alert = event(
        "a1",
        "alert.firing",
        "service/api",
        json!({"service": "api"}),
    );

    let trusted = tmp.path().join("trusted");
    deployment(&trusted, port, true);
    let s = serve_deployment(&trusted, &TOKENS);
    let post = |base: &str, e: &Value| common::post_as(&c, base, OPERATOR, e);
    post(&s.base, &alert);
    let f = flow(&c, &s.base, "a1");
    assert_eq!(f["state"], "done", "{f}");
    let received = std::fs::read_to_string(tmp.path().join("received.jsonl")).unwrap();
    let first: Value = serde_json::from_str(received.lines().next().unwrap()).unwrap();
    assert_eq!(first["path"], "/page");
    let headers = first["headers"].as_object().unwrap();
    let key = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
        .map(|(_, v)| v.as_str().unwrap().to_string())
        .expect("an idempotency key");
    assert!(key.starts_with(f["id"].as_str().unwrap()), "{key}");
    drop(s);

    // The same endpoint without the CA: the certificate is not trusted, the
    // send fails, and people take the page.
    let untrusted = tmp.path().join("untrusted");
    deployment(&untrusted, port, false);
    let s = serve_deployment(&untrusted, &TOKENS);
    post(
        &s.base,
        &event(
            "a2",
            "alert.firing",
            "service/api",
            json!({"service": "api"}),
        ),
    );
    let f = flow(&c, &s.base, "a2");
    assert_eq!(f["steps"][0]["fallback"], true, "{f}");
    let lines = std::fs::read_to_string(tmp.path().join("received.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        1,
        "nothing reached the endpoint without trust"
    );
}
