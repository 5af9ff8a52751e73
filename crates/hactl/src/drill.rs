//! `hactl drill FILE`: plays a drill scenario against the live cluster from one of its nodes.
//! It acts only on this node (services through their init or resource.d script, standby and
//! takeover through the control socket), sees who holds the VIP in `had`'s status, and probes
//! the site through the VIP from here. Steps only a lab can do (crash, cable cut) are refused.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ha_control::{Request, Scope, Snapshot};
use ha_drill::{Action, Executor, ProbeKind, ProbeSample, Prober, Scenario};

use crate::client::{self, exit};

/// How long one status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Probe pace and per-probe timeout (a probe to a VIP in flight must give up quickly).
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// A service script that takes longer than this is killed and the step fails.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the drill; the exit code: 0 every expectation met, 1 not, 3 had not running,
/// 6 the scenario is invalid.
pub fn drill(socket: &Path, file: &Path, json: bool, config_dir: &Path) -> u8 {
    let scenario = match Scenario::load(file) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return exit::CONFIG;
        }
    };
    let snap = match status(socket) {
        Ok(s) => s,
        Err((code, msg)) => {
            eprintln!("hactl: {msg}");
            return code;
        }
    };
    let vip = match scenario.target.vip.or_else(|| first_vip(&snap)) {
        Some(v) => v,
        None => {
            eprintln!(
                "hactl: no IPaddr resource in the status to probe; set `vip` under [target] in {}",
                file.display()
            );
            return exit::FAIL;
        }
    };
    if group_of(&snap, vip).is_none() {
        eprintln!(
            "hactl: no resource group holds {vip}; the groups are: {}",
            snap.groups
                .iter()
                .map(|g| g.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return exit::FAIL;
    }
    let mut exec = LiveExecutor {
        socket: socket.to_path_buf(),
        config_dir: config_dir.to_path_buf(),
        local: snap.node.name.clone(),
        peer: snap.peer.name.clone(),
        vip,
        port: scenario.target.port,
        probe: scenario.target.probe,
        prober: None,
    };
    let report = match ha_drill::run(&scenario, &mut exec, &mut std::io::stderr()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hactl: {e}");
            return exit::FAIL;
        }
    };
    if json {
        println!("{}", report.json());
    } else {
        println!("{}", report.markdown());
    }
    if report.passed { exit::OK } else { exit::FAIL }
}

fn status(socket: &Path) -> Result<Snapshot, (u8, String)> {
    match client::request(socket, &Request::Status, STATUS_TIMEOUT) {
        Ok(r) => match (r.ok, r.status) {
            (true, Some(s)) => Ok(s),
            _ => Err((
                exit::FAIL,
                r.error.unwrap_or_else(|| "had sent no status".into()),
            )),
        },
        Err(e) => Err((e.code(), e.message().to_string())),
    }
}

/// Does a resource's text (`IPaddr::10.0.0.1/24/eth0`, `10.0.0.1`, a group key) name `ip`?
fn names_ip(text: &str, ip: Ipv4Addr) -> bool {
    text.split("::")
        .filter_map(|part| part.split('/').next())
        .any(|a| a.trim().parse::<Ipv4Addr>() == Ok(ip))
}

/// The first address of an IPaddr-like resource in the status, in group order.
fn first_vip(s: &Snapshot) -> Option<Ipv4Addr> {
    s.groups.iter().find_map(|g| {
        std::iter::once(g.key.as_str())
            .chain(g.resources.iter().map(|r| r.name.as_str()))
            .find_map(|t| {
                t.split("::")
                    .filter_map(|p| p.split('/').next())
                    .find_map(|a| a.trim().parse::<Ipv4Addr>().ok())
            })
    })
}

/// Index of the group holding `ip`.
fn group_of(s: &Snapshot, ip: Ipv4Addr) -> Option<usize> {
    s.groups
        .iter()
        .position(|g| names_ip(&g.key, ip) || g.resources.iter().any(|r| names_ip(&r.name, ip)))
}

struct LiveExecutor {
    socket: PathBuf,
    config_dir: PathBuf,
    local: String,
    peer: String,
    vip: Ipv4Addr,
    port: u16,
    probe: ProbeKind,
    prober: Option<Prober>,
}

impl LiveExecutor {
    /// Runs the service's init script, resource.d script, or systemctl, in that order.
    fn service(&self, name: &str, op: &str) -> Result<(), String> {
        let init = Path::new("/etc/init.d").join(name);
        let rsc = self.config_dir.join("resource.d").join(name);
        let mut cmd = if init.is_file() {
            let mut c = Command::new(&init);
            c.arg(op);
            c
        } else if rsc.is_file() {
            let mut c = Command::new(&rsc);
            c.arg(op);
            c
        } else if Path::new("/bin/systemctl").exists() || Path::new("/usr/bin/systemctl").exists() {
            let mut c = Command::new("systemctl");
            c.args([op, name]);
            c
        } else {
            return Err(format!(
                "no {} nor {} to {op} `{name}` with",
                init.display(),
                rsc.display()
            ));
        };
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{shown}: {e}"))?;
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() > SCRIPT_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{shown} did not finish within {SCRIPT_TIMEOUT:?}"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("{shown}: {e}")),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{shown}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{shown} failed ({}): {} {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn admin(&self, req: &Request) -> Result<(), String> {
        match client::request(&self.socket, req, STATUS_TIMEOUT) {
            Ok(r) if r.ok => Ok(()),
            Ok(r) => Err(r.error.unwrap_or_else(|| "refused".into())),
            Err(e) => Err(e.message().to_string()),
        }
    }
}

impl Executor for LiveExecutor {
    fn describe(&self) -> String {
        format!("live, on {} (peer {})", self.local, self.peer)
    }

    fn target(&self) -> String {
        match self.probe {
            ProbeKind::Http => format!("http://{}:{}/ from {}", self.vip, self.port, self.local),
            ProbeKind::Tcp => format!("tcp {}:{} from {}", self.vip, self.port, self.local),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn supports(&self, action: &Action) -> Result<(), String> {
        if action.lab_only() {
            return Err(format!(
                "{} needs the lab: run `ha-lab drill FILE`",
                action.keyword()
            ));
        }
        Ok(())
    }

    fn can_act_on(&self, node: &str) -> Result<(), String> {
        if node == self.local {
            Ok(())
        } else {
            Err(format!(
                "the VIP is on {node}, and hactl drill acts only on the node it runs on ({}): run `hactl drill` on {node}",
                self.local
            ))
        }
    }

    fn vip_holders(&mut self) -> Result<Vec<String>, String> {
        let s = status(&self.socket).map_err(|(_, m)| m)?;
        let g = group_of(&s, self.vip)
            .ok_or_else(|| format!("no resource group holds {} any more", self.vip))?;
        Ok(s.groups[g].held_by.iter().cloned().collect())
    }

    fn peer_of(&self, node: &str) -> Option<String> {
        if node == self.local {
            Some(self.peer.clone())
        } else if node == self.peer {
            Some(self.local.clone())
        } else {
            None
        }
    }

    fn perform(&mut self, action: &Action, node: Option<&str>) -> Result<(), String> {
        if let Some(n) = node {
            self.can_act_on(n)?;
        }
        match action {
            Action::StopService(s) => self.service(s, "stop"),
            Action::StartService(s) => self.service(s, "start"),
            Action::Standby => self.admin(&Request::Standby { scope: Scope::All }),
            Action::Takeover => self.admin(&Request::Takeover { scope: Scope::All }),
            Action::Wait(d) => {
                std::thread::sleep(*d);
                Ok(())
            }
            Action::CrashActive | Action::RestartNode | Action::CutLink | Action::RestoreLink => {
                self.supports(action)
            }
        }
    }

    fn start_probe(&mut self) -> Result<(), String> {
        let addr = SocketAddrV4::new(self.vip, self.port);
        self.prober = Some(Prober::spawn(
            self.probe,
            addr,
            PROBE_EVERY,
            PROBE_TIMEOUT,
            || Ok(()),
        )?);
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
mod tests {
    use super::*;

    #[test]
    fn resource_texts_name_their_address_exactly() {
        let ip: Ipv4Addr = "10.11.10.13".parse().expect("ip");
        assert!(names_ip("IPaddr::10.11.10.13/16/eth0", ip));
        assert!(names_ip("10.11.10.13", ip));
        assert!(names_ip("IPaddr2::10.11.10.13", ip));
        assert!(!names_ip("IPaddr::10.11.10.130/16/eth0", ip));
        assert!(!names_ip("apache2", ip));
    }
}
