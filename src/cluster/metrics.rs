//! `/metrics` on a cluster node: what Prometheus scrapes from each node.
//! The node's own figures (its intake: what it acknowledged and refused,
//! its log, its event stream), then, for every partition it runs, that
//! partition's figures with the label `partition="N"`. Scraping every node
//! sees each partition once, from its owner; after a takeover its series
//! come from the new owner (the counters start again there, which `rate`
//! reads as a reset). `sum by (…)` adds partitions up.

/// One metric family of an exposition: its `# HELP`/`# TYPE` lines and
/// its samples.
#[derive(Debug, Default)]
struct Family {
    meta: Vec<String>,
    samples: Vec<String>,
}

/// The node's exposition and its partitions', as one text (Prometheus
/// text format 0.0.4, as `prometheus-client` writes it: each family once,
/// its samples together).
pub(super) fn merge(node: &str, partitions: &[(u32, String)]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut all: std::collections::HashMap<String, Family> = Default::default();
    let texts =
        std::iter::once((None, node)).chain(partitions.iter().map(|(p, t)| (Some(*p), t.as_str())));
    for (partition, text) in texts {
        for (name, family) in families(text) {
            let into = all.entry(name.clone()).or_insert_with(|| {
                order.push(name);
                Family {
                    meta: family.meta.clone(),
                    samples: Vec::new(),
                }
            });
            into.samples
                .extend(family.samples.iter().map(|s| match partition {
                    Some(p) => labelled(s, p),
                    None => s.clone(),
                }));
        }
    }
    let mut out = String::new();
    for name in order {
        if let Some(family) = all.get(&name) {
            for line in family.meta.iter().chain(&family.samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The families of an exposition, in order, named by their `# HELP` or
/// `# TYPE` line; samples before any are dropped (there are none).
fn families(text: &str) -> Vec<(String, Family)> {
    let mut out: Vec<(String, Family)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.split(' ');
            let (_kind, name) = (words.next(), words.next().unwrap_or_default());
            match out.last_mut() {
                Some((current, family)) if current == name => family.meta.push(line.to_string()),
                _ => out.push((
                    name.to_string(),
                    Family {
                        meta: vec![line.to_string()],
                        samples: Vec::new(),
                    },
                )),
            }
        } else if let Some((_, family)) = out.last_mut() {
            family.samples.push(line.to_string());
        }
    }
    out
}

/// A sample line with `partition="N"` first among its labels.
fn labelled(sample: &str, partition: u32) -> String {
    let end = sample.find(['{', ' ']).unwrap_or(sample.len());
    let (name, rest) = sample.split_at(end);
    match rest.strip_prefix('{') {
        Some(labels) if labels.starts_with('}') => {
            format!("{name}{{partition=\"{partition}\"{labels}")
        }
        Some(labels) => format!("{name}{{partition=\"{partition}\",{labels}"),
        None => format!("{name}{{partition=\"{partition}\"}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_samples_carry_its_label_and_each_family_comes_once() {
        let node = "# HELP sb_accepted Signals acknowledged.\n# TYPE sb_accepted counter\n\
                    sb_accepted_total{endpoint=\"signals\"} 5\n# HELP sb_open Open items.\n\
                    # TYPE sb_open gauge\nsb_open 0\n# EOF\n";
        let p3 = "# HELP sb_open Open items.\n# TYPE sb_open gauge\nsb_open 2\n\
                  # HELP sb_latency Seconds.\n# TYPE sb_latency histogram\n\
                  sb_latency_bucket{le=\"0.1\"} 1\nsb_latency_sum 0.05\nsb_latency_count 1\n";
        let p7 = "# HELP sb_open Open items.\n# TYPE sb_open gauge\nsb_open{} 4\n";
        let text = merge(node, &[(3, p3.into()), (7, p7.into())]);
        assert_eq!(text.matches("# TYPE sb_open gauge").count(), 1, "{text}");
        assert!(
            text.contains("sb_open 0\nsb_open{partition=\"3\"} 2\nsb_open{partition=\"7\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("sb_latency_bucket{partition=\"3\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sb_latency_sum{partition=\"3\"} 0.05\n"),
            "{text}"
        );
        assert!(
            text.contains("sb_accepted_total{endpoint=\"signals\"} 5\n"),
            "{text}"
        );
    }
}
