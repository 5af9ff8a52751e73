//! `ha-lab drill FILE`: plays a drill scenario (ha-drill) in a two-node lab configured like
//! seed 000: node1 is the master holding a VIP, the lab web service and one stand-in process
//! per service the scenario stops, each watched by a had.toml process monitor. Every step
//! kind runs here, crashes and cable cuts included.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_drill::{Action, Executor, ProbeKind, ProbeSample, Prober};
/// The scenario and report types, for callers that only depend on ha-lab.
pub use ha_drill::{Report, Scenario};

use crate::node::sh_quote;
use crate::{ClusterSpec, Group, Lab, LabOptions, netns, web_script};

/// What the lab drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The `had` binary.
    pub had: PathBuf,
    /// The `hactl` binary (for `standby` and `takeover`).
    pub hactl: PathBuf,
}

/// The master, as in seed 000's haresources.
const MASTER: &str = "node1";
/// How often the site is probed, and how long one probe may take: a probe sent to a dead
/// MAC must give up well before TCP's 1 s retransmission.
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Builds the lab, runs every drill of `scenario`, tears the lab down; progress goes to `log`.
pub fn run(
    scenario: &Scenario,
    opts: &DrillOptions,
    log: &mut dyn Write,
) -> anyhow::Result<Report> {
    let mut lab = Lab::new(LabOptions::default())?;
    writeln!(
        log,
        "lab {}: {MASTER} {} and node2 {}, client {}, VIP {}, dir {}",
        lab.id(),
        lab.ip("node1"),
        lab.ip("node2"),
        lab.ip("client"),
        lab.vip(0),
        lab.dir().display()
    )?;
    if let Some(v) = scenario.target.vip {
        writeln!(
            log,
            "(the scenario's VIP {v} is for live runs; the lab uses {})",
            lab.vip(0)
        )?;
    }
    let result = drive(&mut lab, scenario, opts, log);
    let id = lab.id().to_owned();
    let down = lab.shutdown();
    let report = result?;
    down.with_context(|| format!("tearing down lab {id}"))?;
    writeln!(log, "lab {id} removed")?;
    Ok(report)
}

fn drive(
    lab: &mut Lab,
    scenario: &Scenario,
    opts: &DrillOptions,
    log: &mut dyn Write,
) -> anyhow::Result<Report> {
    let services = lab_services(scenario);
    write_config(lab, scenario, &services)?;
    for n in ["node1", "node2"] {
        start_services(lab, n, &services)?;
        lab.node_mut(n).start_had(&opts.had, &[])?;
    }
    writeln!(
        log,
        "had started on node1 and node2 (services: web{})",
        services
            .iter()
            .map(|s| format!(", {s}"))
            .collect::<String>()
    )?;
    let mut exec = LabExecutor {
        vip: lab.vip(0),
        lab,
        opts,
        scenario,
        services,
        crashed: BTreeSet::new(),
        prober: None,
    };
    let report = ha_drill::run(scenario, &mut exec, log)?;
    Ok(report)
}

/// The services the scenario stops, except the web service the lab always runs.
fn lab_services(scenario: &Scenario) -> Vec<String> {
    scenario
        .services()
        .into_iter()
        .filter(|s| s != "web")
        .collect()
}

/// A duration in ha.cf's and had.toml's syntax.
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn write_config(lab: &Lab, scenario: &Scenario, services: &[String]) -> anyhow::Result<()> {
    let l = &scenario.lab;
    let vip = lab.vip(0);
    // warntime must lie between keepalive and deadtime; seed 000 has 3 s for deadtime 5 s.
    let warntime = (l.deadtime * 3 / 5).max(l.keepalive);
    let group = services.iter().fold(
        Group::new(MASTER).ip(vip, 24).res(format!("web::{vip}")),
        |g, s| g.res(s.as_str()),
    );
    // A stopped service moves the VIP, as in seed 000.
    let interval = l.monitor_interval;
    let timeout = interval.min(Duration::from_secs(1));
    let mut spec = ClusterSpec::new("written by ha-lab drill (seed 000's cluster)")
        .timers(
            &ms(l.keepalive),
            &ms(warntime),
            &ms(l.deadtime),
            &ms(l.initdead),
        )
        .auto_failback("on")
        .auth("sha1 drill-secret")
        .group(group)
        .script("resource.d/web", &web_script(scenario.target.port));
    for s in services {
        spec = spec.had_toml(&format!(
            "[[monitor]]\nresource = \"{s}\"\ncheck = \"process:{s}\"\ninterval = \"{}\"\ntimeout = \"{}\"\n",
            ms(interval),
            ms(timeout)
        ));
    }
    spec.write(lab)?;
    for n in lab.nodes() {
        let svc_dir = n.dir.join("svc");
        for s in services {
            n.write_file(
                &format!("resource.d/{s}"),
                &service_script(s, &svc_dir.to_string_lossy()),
                0o755,
            )?;
        }
    }
    Ok(())
}

/// Starts the node's stand-in services, as its boot would.
fn start_services(lab: &Lab, node: &str, services: &[String]) -> anyhow::Result<()> {
    for s in services {
        run_script(lab, node, s, "start")?;
    }
    Ok(())
}

/// Runs `resource.d/<service> <op>` inside the node.
fn run_script(lab: &Lab, node: &str, service: &str, op: &str) -> anyhow::Result<()> {
    let n = lab.node(node);
    let script = n.config_dir().join("resource.d").join(service);
    let out = n.exec(&format!("{} {op}", sh_quote(&script.to_string_lossy())))?;
    if !out.status.success() {
        anyhow::bail!(
            "{node}: `{service} {op}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A resource.d script standing in for `name`: a sleeping process whose name is `name`
/// (started through a symlink, so a `process:` monitor finds it), its pidfile in `dir`.
pub fn service_script(name: &str, dir: &str) -> String {
    SERVICE_SCRIPT
        .replace("__NAME__", &sh_quote(name))
        .replace("__DIR__", &sh_quote(dir))
}

const SERVICE_SCRIPT: &str = r#"#!/bin/sh
# ha-lab drill stand-in for a service: a sleeping process carrying the service's name.
# usage: NAME [ARGS] start|stop|status
NAME=__NAME__
DIR=__DIR__
PIDF="$DIR/$NAME.pid"
for op in "$@"; do :; done

alive() {  # our process runs, is not a zombie, and is still ours (not a reused pid)
  [ -f "$PIDF" ] || return 1
  pid=$(cat "$PIDF" 2>/dev/null)
  [ -n "$pid" ] || return 1
  st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(printf %s "$NAME" | cut -c1-15)" ]
}

case "$op" in
start)
  if alive; then echo "$NAME running"; exit 0; fi
  mkdir -p "$DIR" || exit 1
  ln -sf "$(command -v sleep)" "$DIR/$NAME" || exit 1
  setsid "$DIR/$NAME" 2147483647 </dev/null >/dev/null 2>&1 &
  echo $! > "$PIDF"
  # The child is ours once it has exec'd under the service's name: answer only then, so
  # a status right after start never sees the shell that is still becoming the service.
  i=0; while ! alive && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done
  if alive; then echo "$NAME started"; exit 0; fi
  echo "$NAME did not start"; exit 1;;
stop)
  if alive; then
    kill "$(cat "$PIDF")" 2>/dev/null
    i=0; while alive && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done
  fi
  if alive; then echo "$NAME would not stop"; exit 1; fi
  rm -f "$PIDF"; echo "$NAME stopped"; exit 0;;
status|monitor)
  if alive; then echo "$NAME running"; exit 0; fi
  echo "$NAME stopped"; exit 3;;
*)
  echo "usage: $0 [ARGS] {start|stop|status}"; exit 2;;
esac
"#;

struct LabExecutor<'a> {
    lab: &'a mut Lab,
    opts: &'a DrillOptions,
    scenario: &'a Scenario,
    vip: std::net::Ipv4Addr,
    services: Vec<String>,
    /// Nodes powered off by `crash_active`: they hold nothing, whatever their eth0 says.
    crashed: BTreeSet<String>,
    prober: Option<Prober>,
}

impl LabExecutor<'_> {
    fn hactl(&self, node: &str, cmd: &str) -> Result<(), String> {
        let out = self
            .lab
            .node(node)
            .hactl(&self.opts.hactl, &[cmd])
            .map_err(|e| format!("{e:#}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "hactl {cmd} on {node}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        self.lab.node_mut(node).power_on()?;
        start_services(self.lab, node, &self.services)?;
        let had = self.opts.had.clone();
        self.lab.node_mut(node).start_had(&had, &[])?;
        self.crashed.remove(node);
        Ok(())
    }
}

impl Executor for LabExecutor<'_> {
    fn describe(&self) -> String {
        format!(
            "ha-lab {} (node1 {}, node2 {}, client {})",
            self.lab.id(),
            self.lab.ip("node1"),
            self.lab.ip("node2"),
            self.lab.ip("client")
        )
    }

    fn target(&self) -> String {
        let t = &self.scenario.target;
        match t.probe {
            ProbeKind::Http => format!("http://{}:{}/ from the client", self.vip, t.port),
            ProbeKind::Tcp => format!("tcp {}:{} from the client", self.vip, t.port),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn supports(&self, _action: &Action) -> Result<(), String> {
        Ok(())
    }

    fn can_act_on(&self, _node: &str) -> Result<(), String> {
        Ok(())
    }

    fn vip_holders(&mut self) -> Result<Vec<String>, String> {
        Ok(self
            .lab
            .nodes()
            .iter()
            .filter(|n| !self.crashed.contains(n.name()) && n.has_addr(self.vip))
            .map(|n| n.name().to_string())
            .collect())
    }

    fn peer_of(&self, node: &str) -> Option<String> {
        self.lab
            .nodes()
            .iter()
            .find(|n| n.name() != node)
            .map(|n| n.name().to_string())
    }

    fn perform(&mut self, action: &Action, node: Option<&str>) -> Result<(), String> {
        let n = node.unwrap_or_default().to_string();
        let r: anyhow::Result<()> = match action {
            Action::StopService(s) => run_script(self.lab, &n, s, "stop"),
            Action::StartService(s) => run_script(self.lab, &n, s, "start"),
            Action::CrashActive => {
                self.crashed.insert(n.clone());
                self.lab.node_mut(&n).crash()
            }
            Action::RestartNode => self.restart(&n),
            Action::Standby => return self.hactl(&n, "standby"),
            Action::Takeover => return self.hactl(&n, "takeover"),
            Action::Wait(d) => {
                std::thread::sleep(*d);
                Ok(())
            }
            Action::CutLink => self.lab.node(&n).cut_link(),
            Action::RestoreLink => self.lab.node(&n).restore_link(),
        };
        r.map_err(|e| format!("{e:#}"))
    }

    fn start_probe(&mut self) -> Result<(), String> {
        let file = netns::open(self.lab.client_netns()).map_err(|e| format!("{e:#}"))?;
        let addr = SocketAddrV4::new(self.vip, self.scenario.target.port);
        let p = Prober::spawn(
            self.scenario.target.probe,
            addr,
            PROBE_EVERY,
            PROBE_TIMEOUT,
            move || netns::enter(&file).map_err(|e| format!("{e:#}")),
        )?;
        self.prober = Some(p);
        Ok(())
    }

    fn samples(&self) -> Vec<ProbeSample> {
        self.prober
            .as_ref()
            .map(Prober::samples)
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn service_script_starts_a_process_under_the_service_name_and_stops_it() {
        let dir = std::env::temp_dir().join(format!("ha-lab-svc-test-{}", std::process::id()));
        let script = service_script("drill-svc", &dir.to_string_lossy());
        let run = |op: &str| {
            Command::new("sh")
                .args(["-c", &script, "drill-svc", op])
                .output()
                .unwrap()
        };
        assert_eq!(run("status").status.code(), Some(3));
        assert!(run("start").status.success());
        assert_eq!(run("status").status.code(), Some(0));
        let pid = std::fs::read_to_string(dir.join("drill-svc.pid")).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim())).unwrap();
        assert_eq!(comm.trim(), "drill-svc");
        // Starting twice keeps the one process.
        assert!(run("start").status.success());
        let again = std::fs::read_to_string(dir.join("drill-svc.pid")).unwrap();
        assert_eq!(pid, again);
        assert!(run("stop").status.success());
        assert_eq!(run("status").status.code(), Some(3));
        assert_eq!(run("bogus").status.code(), Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
