//! End to end (issue 11): a small seeded lab soak — a two-node cluster with a web service
//! behind the VIP, a client probing every 20 ms, and a few random faults of several kinds at
//! keepalive 100 ms / deadtime 500 ms, each followed by a settle and the audits. Zero
//! violations. Needs root and nftables; with HA_REQUIRE_LAB=1 it fails instead of skipping.
//! The long runs are `just soak N` (docs/reliability.md, "Lab soak").

use std::time::Instant;

use ha_soak::{Options, Timers};

#[test]
fn a_small_seeded_soak_has_no_violations() {
    if !(ha_lab::lab_available("soak")
        && ha_lab::gate::lab_needs(
            "soak",
            ha_lab::gate::program_installed("/usr/sbin/nft"),
            "nftables is not installed (just setup)",
        ))
    {
        return;
    }
    let seed = std::env::var("HA_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let opts = Options {
        faults: 16,
        seed,
        timers: Timers::parse("100ms/500ms").expect("timers"),
        mixed: false,
        kinds: Vec::new(),
        command: format!("cargo test --test soak (seed {seed})"),
        progress: true,
        logs_to: None,
    };
    let t0 = Instant::now();
    let report = ha_soak::run(&opts).expect("the soak runs");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, md) = report.write(dir.path()).expect("report written");
    let text = std::fs::read_to_string(&md).expect("report readable");
    eprintln!(
        "soak seed {seed}: {} faults in {:?}, availability {:.3} %, kinds {:?}",
        report.faults_run,
        t0.elapsed(),
        report.availability.share * 100.0,
        report.kinds.keys().collect::<Vec<_>>()
    );
    assert!(
        report.stopped_early.is_none(),
        "stopped early: {:?}\n{text}",
        report.stopped_early
    );
    assert_eq!(report.faults_run, opts.faults);
    assert!(
        report.kinds.len() >= 6,
        "too few kinds: {:?}",
        report.kinds.keys()
    );
    assert!(
        report.violations.is_empty(),
        "{} violation(s):\n{text}",
        report.violations.len()
    );
    assert!(text.contains("## Recovery time per fault kind"));
    assert!(report.availability.probes > 100);
}
