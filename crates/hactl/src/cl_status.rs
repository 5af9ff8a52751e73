//! `cl_status`: Heartbeat's query tool, same sub-commands, output text and exit codes
//! (0 ok, 1 normal failure, 11 parameter error, 12 timeout, 13 unknown error), answered
//! from had's status. Reached as `hactl cl-status ...` or through a `cl_status` link.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ha_control::{Request, Snapshot};

use crate::client::{self, ClientError};

const OK: u8 = 0;
const NORMAL_FAIL: u8 = 1;
const PARAMETER_ERROR: u8 = 11;
const TIMEOUT: u8 = 12;
const UNKNOWN_ERROR: u8 = 13;

/// Heartbeat's `cl_status` gives up after 5 s.
const DEADLINE: Duration = Duration::from_secs(5);

const HELP: &str = "Usage: cl_status <sub-command> [<options>] [<parameters>]

Sub-commands:
hblinkstatus <node-name> <link-name>
\tShow the status of a heartbeat link
hbstatus
\tIndicate if heartbeat is running on the local system.
\tOptions:
\t\t-v\tverbose: also add \"listnodes -v\" output
listnodes [<option>]
\tList the nodes in the cluster.
\tOptions:
\t\t-p\tlist only 'ping' type nodes
\t\t-n\tlist only 'normal' type nodes
\t\t-v\tverbose: also list type and status,
\t\t\tthen add \"listhblinks -v\" output
listhblinks <node-name>
\tList the network interfaces used as hearbeat links.
\tOptions:
\t\t-v\tverbose: list link status as well
nodestatus <node-name>
\tList the node status.
nodetype <node-name>
\tList the nodes of a given type.
rscstatus
\tShow the status of cluster resources.
hbparameter -p <parameter-name>
\tRetrieve the value of a cluster parameter.
";

/// What `cl_status` needs from the daemon; the socket in real use, a fixture in tests.
pub trait Source {
    /// The daemon's status, or why it cannot be had.
    fn snapshot(&mut self) -> Result<Snapshot, ClientError>;
    /// An ha.cf parameter (`None`: not set).
    fn parameter(&mut self, name: &str) -> Result<Option<String>, ClientError>;
}

/// The daemon behind its control socket.
pub struct SocketSource<'a>(pub &'a Path);

impl Source for SocketSource<'_> {
    fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        let resp = client::request(self.0, &Request::Status, DEADLINE)?;
        match (resp.ok, resp.status) {
            (true, Some(s)) => Ok(s),
            _ => Err(ClientError::Failed(
                resp.error.unwrap_or_else(|| "no status".into()),
            )),
        }
    }
    fn parameter(&mut self, name: &str) -> Result<Option<String>, ClientError> {
        let resp = client::request(
            self.0,
            &Request::Parameter {
                name: name.to_string(),
            },
            DEADLINE,
        )?;
        Ok(if resp.ok { resp.message } else { None })
    }
}

/// What one run printed and its exit code.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// Parsed options of a sub-command: flags from its option string, `-p` with its value,
/// and the positional words (GNU getopt lets options and words mix).
struct Opts {
    human: bool,
    verbose: bool,
    ping_only: bool,
    normal_only: bool,
    param: Option<String>,
    words: Vec<String>,
}

fn parse_opts(args: &[String], allowed: &str) -> Result<Opts, String> {
    let mut o = Opts {
        human: false,
        verbose: false,
        ping_only: false,
        normal_only: false,
        param: None,
        words: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            o.words.extend(it.by_ref().cloned());
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.words.push(a.clone());
            continue;
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            if !allowed.contains(c) {
                return Err(format!("invalid option -- '{c}'"));
            }
            match c {
                'm' => o.human = true,
                'v' => o.verbose = true,
                'p' if allowed.contains("p:") => {
                    let rest: String = chars.by_ref().collect();
                    let v = if rest.is_empty() {
                        it.next()
                            .cloned()
                            .ok_or_else(|| "option requires an argument -- 'p'".to_string())?
                    } else {
                        rest
                    };
                    o.param = Some(v);
                }
                'p' => o.ping_only = true,
                'n' => o.normal_only = true,
                _ => {}
            }
        }
    }
    Ok(o)
}

/// Run `cl_status` with `args` (without the program name) against `src`.
pub fn run(args: &[String], src: &mut dyn Source) -> Run {
    let mut r = Run::default();
    let Some(sub) = args.first() else {
        r.stdout = HELP.into();
        return r;
    };
    if sub == "-h" && args.len() == 1 {
        r.stdout = HELP.into();
        return r;
    }
    let optstr = match sub.as_str() {
        "hbstatus" => "mv",
        "listnodes" => "mpnv",
        "nodestatus" | "nodetype" | "nodeweight" | "nodesite" | "hblinkstatus" | "rscstatus" => "m",
        "listhblinks" => "mv",
        "hbparameter" => "mp:",
        _ => {
            err(&mut r, &format!("{sub}: invalid sub-command."));
            r.code = PARAMETER_ERROR;
            return r;
        }
    };
    let o = match parse_opts(&args[1..], optstr) {
        Ok(o) => o,
        Err(e) => {
            r.stderr.push_str(&format!("cl_status: {e}\n"));
            r.code = PARAMETER_ERROR;
            return r;
        }
    };
    let snap = src.snapshot();
    if sub == "hbstatus" {
        return hbstatus(r, &o, snap);
    }
    let s = match snap {
        Ok(s) => s,
        Err(e) => {
            err(&mut r, "Cannot signon with heartbeat");
            err(&mut r, &format!("REASON: {}", first_line(e.message())));
            r.code = signon_code(&e);
            return r;
        }
    };
    let node = o.words.first().map(|n| n.to_lowercase());
    match sub.as_str() {
        "listnodes" => {
            if o.human {
                r.stdout.push_str("The nodes are as follow:\n");
            }
            let (normal_only, ping_only) = if o.normal_only && o.ping_only {
                (false, false)
            } else {
                (o.normal_only, o.ping_only)
            };
            // had's nodes are all `normal`: ping nodes are not listed as cluster nodes yet.
            if !ping_only || normal_only {
                list_nodes(&mut r.stdout, &s, o.verbose);
            }
        }
        "nodestatus" => {
            let Some(n) = node else {
                r.stderr.push_str("Not enough parameters.\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            let Some(st) = node_status(&s, &n) else {
                r.stderr
                    .push_str("Error. May be due to incorrect node name\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            if o.human {
                let _ = writeln!(r.stdout, "The cluster node {} is {st}", o.words[0]);
            } else {
                let _ = writeln!(r.stdout, "{st}");
            }
            r.code = if matches!(st, "active" | "up" | "ping") {
                OK
            } else {
                NORMAL_FAIL
            };
        }
        "nodetype" => {
            let Some(n) = node else {
                r.stderr.push_str("No enough parameter.\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            let t = if s.nodes.contains(&n) || n == s.node.name || n == s.peer.name {
                "normal"
            } else {
                "unknown"
            };
            if o.human {
                let _ = writeln!(r.stdout, "The node {}'s type: {t}", o.words[0]);
            } else {
                let _ = writeln!(r.stdout, "{t}");
            }
        }
        "nodeweight" | "nodesite" => {
            let Some(n) = node else {
                r.stderr.push_str("Not enough parameters.\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            if node_status(&s, &n).is_none() {
                r.stderr
                    .push_str("Error. May be due to incorrect node name\n");
                r.code = PARAMETER_ERROR;
                return r;
            }
            // Heartbeat's defaults: weight 100, site empty.
            let v = if sub == "nodeweight" { "100" } else { "" };
            let _ = writeln!(r.stdout, "{v}");
        }
        "listhblinks" => {
            let Some(n) = node else {
                r.stderr.push_str("No enough parameter.\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            let Some(links) = links_of(&s, &n) else {
                err(&mut r, "Cannot start heartbeat link interface walk.");
                err(&mut r, "REASON: unknown node");
                r.code = UNKNOWN_ERROR;
                return r;
            };
            if o.human {
                r.stdout
                    .push_str("\tthis node has the following heartbeat links:\n");
            }
            for (name, st) in links {
                if o.verbose {
                    let _ = writeln!(r.stdout, "\t{name}\t{st}");
                } else {
                    let _ = writeln!(r.stdout, "\t{name}");
                }
            }
        }
        "hblinkstatus" => {
            let (Some(n), Some(link)) = (node, o.words.get(1)) else {
                r.stderr.push_str("No enough parameter.\n");
                r.code = PARAMETER_ERROR;
                return r;
            };
            let st = links_of(&s, &n)
                .and_then(|ls| ls.into_iter().find(|(l, _)| l == link).map(|(_, st)| st));
            let Some(st) = st else {
                err(&mut r, "Cannot get heartbeat link status");
                err(&mut r, "REASON: unknown node or link");
                r.code = UNKNOWN_ERROR;
                return r;
            };
            if o.human {
                let _ = writeln!(
                    r.stdout,
                    "The node {}'s heartbeat link {link} is {st}",
                    o.words[0]
                );
            } else {
                let _ = writeln!(r.stdout, "{st}");
            }
            r.code = if st == "up" { OK } else { NORMAL_FAIL };
        }
        "rscstatus" => {
            let st = rsc_status(&s);
            if o.human {
                let _ = writeln!(r.stdout, "This node is holding {st} resources.");
            } else {
                let _ = writeln!(r.stdout, "{st}");
            }
        }
        "hbparameter" => {
            let Some(name) = o.param else {
                err(&mut r, "parameter name required");
                r.code = PARAMETER_ERROR;
                return r;
            };
            match src.parameter(&name) {
                Ok(Some(v)) => {
                    if o.human {
                        let _ = writeln!(r.stdout, "Heartbeat parameter {name}'s value: {v}");
                    } else {
                        let _ = writeln!(r.stdout, "{v}");
                    }
                }
                Ok(None) => {
                    err(&mut r, &format!("Cannot get parameter {name}'s value"));
                    err(&mut r, "REASON: not set");
                    r.code = NORMAL_FAIL;
                }
                Err(e) => {
                    err(&mut r, &format!("Cannot get parameter {name}'s value"));
                    err(&mut r, &format!("REASON: {}", first_line(e.message())));
                    r.code = signon_code(&e);
                }
            }
        }
        _ => {}
    }
    r
}

fn hbstatus(mut r: Run, o: &Opts, snap: Result<Snapshot, ClientError>) -> Run {
    let s = match snap {
        Ok(s) => s,
        Err(ClientError::NotRunning(_)) => {
            r.stdout = "Heartbeat is stopped on this machine.\n".into();
            r.code = NORMAL_FAIL;
            return r;
        }
        Err(e) => {
            // The socket answered, so the daemon runs; it just would not tell us more.
            r.stdout =
                "Heartbeat is apparently running on this machine, but refuses my connection\n"
                    .into();
            if o.verbose {
                let _ = writeln!(r.stdout, "({})", first_line(e.message()));
            }
            return r;
        }
    };
    if !o.verbose {
        r.stdout = "Heartbeat is running on this machine.\n".into();
        return r;
    }
    if o.human {
        let _ = writeln!(r.stdout, "Heartbeat version {}", s.version);
        r.stdout
            .push_str("Resources controlled by \"haresources\"\n");
    } else {
        let _ = writeln!(r.stdout, "version:\t{}", s.version);
        r.stdout.push_str("managed by:\t\"haresources\"\n");
    }
    list_nodes(&mut r.stdout, &s, true);
    r
}

fn list_nodes(out: &mut String, s: &Snapshot, verbose: bool) {
    for n in node_order(s) {
        if verbose {
            let st = node_status(s, &n).unwrap_or("dead");
            let _ = writeln!(out, "\n{n}\t{st}\t(nodetype: normal)");
            for (l, st) in links_of(s, &n).unwrap_or_default() {
                let _ = writeln!(out, "\t{l}\t{st}");
            }
        } else {
            let _ = writeln!(out, "{n}");
        }
    }
}

/// Heartbeat 3.0.6 walks its node table last-configured first (`node node1 node2` lists
/// node2 then node1 on both nodes, as measured in the lab); an older daemon without the
/// list gives peer then local.
fn node_order(s: &Snapshot) -> Vec<String> {
    if s.nodes.is_empty() {
        vec![s.peer.name.clone(), s.node.name.clone()]
    } else {
        s.nodes.iter().rev().cloned().collect()
    }
}

/// Heartbeat's words: `active` (talking), `up` (heard, not yet active), `init`
/// (never heard), `dead` (declared dead or shut down).
fn node_status<'a>(s: &'a Snapshot, n: &str) -> Option<&'a str> {
    if n == s.node.name {
        Some(s.node.status.as_str())
    } else if n == s.peer.name {
        Some(match s.peer.status.as_str() {
            "gone" => "dead",
            other => other,
        })
    } else {
        None
    }
}

/// The links of `n` with their status; ours are all up while we run.
fn links_of(s: &Snapshot, n: &str) -> Option<Vec<(String, String)>> {
    if n == s.peer.name {
        Some(
            s.peer
                .links
                .iter()
                .map(|l| (l.name.clone(), l.status.clone()))
                .collect(),
        )
    } else if n == s.node.name {
        Some(
            s.peer
                .links
                .iter()
                .map(|l| (l.name.clone(), "up".to_string()))
                .collect(),
        )
    } else {
        None
    }
}

/// `none`/`local`/`foreign`/`all`, `transition` while a group starts or stops here.
/// Heartbeat's flags, not a count: `local` means "holds its own groups", which a node with
/// no groups of its own does too (Heartbeat prints `local` there) unless it stands by;
/// `foreign` means "holds some of the peer's groups".
fn rsc_status(s: &Snapshot) -> &'static str {
    if s.groups
        .iter()
        .any(|g| matches!(g.state.as_str(), "starting" | "stopping"))
    {
        return "transition";
    }
    let mine = |g: &&ha_control::GroupStatus| g.held_by.as_deref() == Some(&s.node.name);
    let mut own = s
        .groups
        .iter()
        .filter(|g| g.preferred == s.node.name)
        .peekable();
    let local = if own.peek().is_none() {
        !s.node.standby
    } else {
        own.all(|g| mine(&g))
    };
    let foreign = s
        .groups
        .iter()
        .filter(mine)
        .any(|g| g.preferred != s.node.name);
    match (local, foreign) {
        (false, false) => "none",
        (true, false) => "local",
        (false, true) => "foreign",
        (true, true) => "all",
    }
}

fn signon_code(e: &ClientError) -> u8 {
    match e {
        ClientError::NotRunning(_) => NORMAL_FAIL,
        ClientError::Failed(m) if m.contains("timed out") || m.contains("WouldBlock") => TIMEOUT,
        ClientError::Failed(_) => NORMAL_FAIL,
    }
}

/// Heartbeat logs these through cl_log to stderr: `cl_status[PID]: DATE ERROR: text`.
fn err(r: &mut Run, msg: &str) {
    let now = chrono_like_now();
    let _ = writeln!(
        r.stderr,
        "cl_status[{}]: {now} ERROR: {msg}",
        std::process::id()
    );
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `YYYY/MM/DD_HH:MM:SS` in UTC, cl_log's stamp format, without a date crate.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02}_{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's civil calendar algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
