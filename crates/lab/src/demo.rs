//! The seed-002 scenario in the lab: node1 serves a web site on a VIP, is
//! crashed, node2 takes over, node1 is powered on and fails back. Every step
//! is timed against a deadline.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{ClusterSpec, Group, Lab, LabOptions, max_gap_after, web_script};

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `had` binary.
    pub had: PathBuf,
    /// The `hactl` binary.
    pub hactl: PathBuf,
    /// Port of the web service on the VIP.
    pub port: u16,
}

/// One timed step of the demo.
#[derive(Debug, Clone)]
pub struct Step {
    /// What happened.
    pub name: String,
    /// The measured time, if the expected outcome came at all.
    pub measured: Option<Duration>,
    /// The deadline; None for figures that are only reported.
    pub deadline: Option<Duration>,
}

impl Step {
    /// Did the step reach its outcome within its deadline?
    pub fn ok(&self) -> bool {
        match (self.measured, self.deadline) {
            (Some(m), Some(d)) => m <= d,
            (None, Some(_)) => false,
            (_, None) => true,
        }
    }
}

/// The outcome of a demo run.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The lab's run id.
    pub lab_id: String,
    /// The timed steps, in order.
    pub steps: Vec<Step>,
}

impl DemoReport {
    /// True when every step met its deadline.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(Step::ok)
    }

    /// The steps as a Markdown table.
    pub fn table(&self) -> String {
        let mut t = String::from("| step | measured | deadline | result |\n|---|---|---|---|\n");
        for s in &self.steps {
            let measured = s
                .measured
                .map_or("never".to_owned(), |m| format!("{} ms", m.as_millis()));
            let deadline = s
                .deadline
                .map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
            let result = if s.deadline.is_none() {
                "info"
            } else if s.ok() {
                "ok"
            } else {
                "FAILED"
            };
            let _ = writeln!(t, "| {} | {measured} | {deadline} | {result} |", s.name);
        }
        t
    }
}

const DEADTIME: Duration = Duration::from_secs(5);
const INITDEAD: Duration = Duration::from_secs(10);

/// Runs the scenario, narrating to `out`; the lab is torn down before returning.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<DemoReport> {
    let mut lab = Lab::new(LabOptions::default())?;
    writeln!(
        out,
        "lab {}: nodes {} and {}, client {}, dir {}",
        lab.id(),
        lab.ip("node1"),
        lab.ip("node2"),
        lab.ip("client"),
        lab.dir().display()
    )?;
    let result = scenario(&mut lab, opts, out);
    let id = lab.id().to_owned();
    let down = lab.shutdown();
    let steps = result?;
    down.with_context(|| format!("tearing down lab {id}"))?;
    writeln!(out, "lab {id} removed")?;
    Ok(DemoReport { lab_id: id, steps })
}

fn write_config(lab: &Lab, port: u16) -> anyhow::Result<()> {
    let vip = lab.vip(0);
    ClusterSpec::new("written by ha-lab demo (seed 002)")
        .nodes(lab.nodes().iter().map(|n| n.name()))
        .timers_d(
            Duration::from_secs(1),
            Duration::from_secs(3),
            DEADTIME,
            INITDEAD,
        )
        .auto_failback("on")
        .auth("md5 motdepasse")
        .group(Group::new("node1").ip(vip, 24).res(format!("web::{vip}")))
        .script("resource.d/web", &web_script(port))
        .write(lab)
}

fn show_status(
    lab: &Lab,
    node: &str,
    opts: &DemoOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "$ hactl status   # on {node}")?;
    match lab.node(node).hactl(&opts.hactl, &["status"]) {
        Ok(o) => {
            out.write_all(&o.stdout)?;
            out.write_all(&o.stderr)?;
            if !o.status.success() {
                writeln!(out, "(hactl exited with {})", o.status)?;
            }
        }
        Err(e) => writeln!(out, "(hactl failed: {e:#})")?,
    }
    Ok(())
}

fn scenario(lab: &mut Lab, opts: &DemoOptions, out: &mut dyn Write) -> anyhow::Result<Vec<Step>> {
    let vip = lab.vip(0);
    let port = opts.port;
    write_config(lab, port)?;
    let mut steps = Vec::new();

    let t0 = Instant::now();
    for n in ["node1", "node2"] {
        lab.node_mut(n).start_had(&opts.had, &[])?;
    }
    writeln!(
        out,
        "had started on node1 and node2; waiting for http://{vip}:{port}/ to answer node1"
    )?;
    let up_deadline = INITDEAD + Duration::from_secs(20);
    let up = lab.wait_until(up_deadline, || {
        lab.client_http_get(vip, port, Duration::from_millis(300))
            .is_ok_and(|b| b.trim() == "node1")
    });
    steps.push(Step {
        name: "start → VIP served by node1".into(),
        measured: up.map(|_| t0.elapsed()),
        deadline: Some(up_deadline),
    });
    if up.is_none() {
        writeln!(
            out,
            "node1 never served the VIP; see {}",
            lab.node("node1").log_path().display()
        )?;
        return Ok(steps);
    }
    show_status(lab, "node1", opts, out)?;

    let prober = lab.probe(vip, port, Duration::from_millis(20));
    // Let the prober see the steady state before the fault.
    std::thread::sleep(Duration::from_millis(200));
    writeln!(out, "crashing node1 (link down, kill -9 everything in it)")?;
    let t_crash = Instant::now();
    lab.node_mut("node1").crash()?;
    let crash_deadline = DEADTIME + Duration::from_secs(1);
    let served = lab.wait_until(crash_deadline + Duration::from_secs(10), || {
        prober.first_answer_from("node2", t_crash).is_some()
    });
    let measured = served
        .and_then(|_| prober.first_answer_from("node2", t_crash))
        .map(|at| at.saturating_duration_since(t_crash));
    writeln!(out, "client served by node2 after {}", fmt_ms(measured))?;
    steps.push(Step {
        name: "crash node1 → client served by node2".into(),
        measured,
        deadline: Some(crash_deadline),
    });
    steps.push(Step {
        name: "VIP held by node2 after the crash".into(),
        measured: lab.node("node2").has_addr(vip).then_some(Duration::ZERO),
        deadline: Some(Duration::ZERO),
    });
    show_status(lab, "node2", opts, out)?;

    writeln!(out, "powering node1 on and starting had again")?;
    lab.node_mut("node1").power_on()?;
    let t_boot = Instant::now();
    lab.node_mut("node1").start_had(&opts.had, &[])?;
    let failback_deadline = Duration::from_secs(15);
    let back = lab.wait_until(failback_deadline + Duration::from_secs(10), || {
        prober.first_answer_from("node1", t_boot).is_some()
    });
    let measured = back
        .and_then(|_| prober.first_answer_from("node1", t_boot))
        .map(|at| at.saturating_duration_since(t_boot));
    writeln!(
        out,
        "client served by node1 again after {}",
        fmt_ms(measured)
    )?;
    // A little more probing shows whether the service stays put.
    std::thread::sleep(Duration::from_millis(500));
    let samples = prober.stop();
    steps.push(Step {
        name: "node1 back → client served by node1 (failback)".into(),
        measured,
        deadline: Some(failback_deadline),
    });
    steps.push(Step {
        name: "failback client gap (longest time without an answer)".into(),
        measured: max_gap_after(&samples, t_boot),
        deadline: None,
    });
    show_status(lab, "node1", opts, out)?;
    Ok(steps)
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn report_verdicts_and_table() {
        let r = DemoReport {
            lab_id: "hl000001".into(),
            steps: vec![
                Step {
                    name: "a".into(),
                    measured: Some(Duration::from_millis(10)),
                    deadline: Some(Duration::from_secs(1)),
                },
                Step {
                    name: "gap".into(),
                    measured: None,
                    deadline: None,
                },
            ],
        };
        assert!(r.passed());
        assert!(r.table().contains("| a | 10 ms | 1000 ms | ok |"));
        let mut late = r.clone();
        late.steps[0].measured = Some(Duration::from_secs(2));
        assert!(!late.passed());
        let mut never = r;
        never.steps[0].measured = None;
        assert!(!never.passed());
        assert!(never.table().contains("| a | never | 1000 ms | FAILED |"));
    }
}
