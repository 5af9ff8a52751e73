//! End to end, issue 12: the `[metrics]` endpoint. `promtool check metrics` accepts what a
//! running node serves, and a real Prometheus server (Debian's, in the lab's client namespace,
//! its storage in the lab directory) scrapes both nodes through a failover: the survivor's
//! failover histogram, group and peer gauges change in Prometheus' own query API.
//! Needs root and the `prometheus` package; HA_REQUIRE_LAB=1 makes it fail instead of skipping.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, Setup};

const PORT: u16 = 9694;

/// `GET path` to ip:port from the client namespace; the body of a 2xx answer.
fn client_get(c: &Cluster, ip: impl Into<IpAddr>, port: u16, path: &str) -> Option<String> {
    c.lab
        .client_http_get_path(ip, port, path, Duration::from_secs(5))
        .ok()
}

/// Percent-encodes a PromQL query for a URL.
fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Prometheus server, ended by PID when the test ends (also on panic).
struct Prom(Child);

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of an instant query's first sample, if it has one.
fn query(c: &Cluster, q: &str) -> Option<f64> {
    let body = client_get(
        c,
        Ipv4Addr::LOCALHOST,
        9090,
        &format!("/api/v1/query?query={}", enc(q)),
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_both_nodes_through_a_failover() {
    if !ha_lab::lab_available("prometheus_scrapes_both_nodes") {
        return;
    }
    let t_test = Instant::now();
    let setup = Setup {
        keepalive: "500ms",
        deadtime: "2",
        warntime: "1",
        initdead: "4",
        ..Setup::default()
    };
    let mut c = Cluster::prepare(&setup).expect("lab");
    let ip1 = c.lab.node("node1").ip();
    let ip2 = c.lab.node("node2").ip();
    for n in ["node1", "node2"] {
        let ip = c.lab.node(n).ip();
        c.lab
            .node(n)
            .write_file(
                "had.toml",
                &format!("[metrics]\nlisten = \"{ip}:{PORT}\"\n"),
                0o644,
            )
            .expect("had.toml");
    }
    c.start_node("node1").expect("node1");
    c.start_node("node2").expect("node2");
    c.expect_served_by("node1", Duration::from_secs(20));

    // The exposition as served passes Prometheus' own linter.
    let text = c
        .lab
        .wait_until(Duration::from_secs(5), || {
            client_get(&c, ip1, PORT, "/metrics").is_some()
        })
        .and_then(|_| client_get(&c, ip1, PORT, "/metrics"))
        .expect("node1 serves /metrics");
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; `just setup` installs it)");
    {
        use std::io::Write;
        let mut stdin = lint.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write");
    }
    let lint = lint.wait_with_output().expect("promtool");
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    println!(
        "promtool check metrics: clean ({} lines)",
        text.lines().count()
    );

    // A Prometheus of our own, scraping every second, storage in the lab directory.
    let dir = c.lab.dir().join("prometheus");
    std::fs::create_dir_all(dir.join("data")).expect("dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
             scrape_configs:\n  - job_name: had\n    static_configs:\n      \
             - targets: ['{ip1}:{PORT}', '{ip2}:{PORT}']\n"
        ),
    )
    .expect("config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let prom = Command::new("ip")
        .args(["netns", "exec", c.lab.client_netns(), "prometheus"])
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .args([
            "--storage.tsdb.retention.time=1h",
            "--web.listen-address=127.0.0.1:9090",
            "--log.level=warn",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    let _prom = Prom(prom);
    let prom_log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();

    let held1 = format!("had_group_held{{instance=\"{ip1}:{PORT}\"}}");
    let up2 = format!("up{{instance=\"{ip2}:{PORT}\"}}");
    let seen = c.lab.wait_until(Duration::from_secs(30), || {
        query(&c, &held1) == Some(1.0) && query(&c, &up2) == Some(1.0)
    });
    assert!(
        seen.is_some(),
        "Prometheus never scraped both nodes: {:?} {:?}\n{}",
        query(&c, &held1),
        query(&c, &up2),
        prom_log()
    );
    println!("Prometheus scraping both nodes after {seen:?}");

    // Failover: node1 loses power; node2 takes the group.
    let t0 = Instant::now();
    c.lab.node_mut("node1").crash().expect("crash");
    c.expect_served_by("node2", Duration::from_secs(15));
    println!("served by node2 {:?} after the crash", t0.elapsed());

    let i2 = format!("instance=\"{ip2}:{PORT}\"");
    let checks = [
        format!("had_failover_duration_seconds_count{{{i2}}}"),
        format!("had_group_held{{{i2}}}"),
        format!("had_peer_status{{{i2},status=\"dead\"}}"),
        format!("had_transitions_total{{{i2},what=\"running\"}}"),
    ];
    let changed = c.lab.wait_until(Duration::from_secs(20), || {
        checks.iter().all(|q| query(&c, q) == Some(1.0))
            && query(&c, &format!("up{{instance=\"{ip1}:{PORT}\"}}")) == Some(0.0)
    });
    let values: Vec<(String, Option<f64>)> =
        checks.iter().map(|q| (q.clone(), query(&c, q))).collect();
    assert!(
        changed.is_some(),
        "Prometheus did not see the failover: {values:?}\n{}\n{}",
        prom_log(),
        c.logs()
    );
    let took = query(&c, &format!("had_failover_duration_seconds_sum{{{i2}}}"));
    println!(
        "Prometheus saw the failover {:?} after the crash; failover duration {took:?} s \
         (deadtime 2 s); test took {:.1} s",
        t0.elapsed(),
        t_test.elapsed().as_secs_f64()
    );
    let took = took.expect("failover sum");
    assert!(
        (1.0..10.0).contains(&took),
        "failover from the last heartbeat should be about deadtime: {took}"
    );
}
