//! A tiny LSB-ish resource.d script serving `uname -n` over HTTP, so a
//! client can tell which node answers through the VIP.

/// The text of a resource.d script `web [VIP] start|stop|status` serving
/// `uname -n` on VIP:port (all addresses without a VIP).
///
/// Uses busybox httpd when busybox has the applet, else `python3 -m
/// http.server`. The pidfile lives in /run, which the lab makes private per
/// node. `start` returns once the port listens; `stop` waits on the server's
/// exit (a pidfd, through perl-base; a 10 ms poll where that is missing), SIGKILLs it
/// after 3 s, and counts a zombie as dead (orphans may be reaped late);
/// `status` prints `running` (exit 0) or `stopped` (exit 3).
pub fn web_script(port: u16) -> String {
    WEB_SCRIPT.replace("__PORT__", &port.to_string())
}

/// Like [`web_script`], but listening on `[::]:port` (every IPv6 address and, dual-stack,
/// IPv4 too); for IPv6 VIPs, whose `::` cannot be passed through a haresources argument.
pub fn web6_script(port: u16) -> String {
    web_script(port)
        .replace("BIND=${VIP:-0.0.0.0}", "BIND=${VIP:-[::]}")
        .replace("TAG=web-${VIP:-any}-$PORT", "TAG=web6-$PORT")
        .replace("NET=/proc/net/tcp\n", "NET=/proc/net/tcp6\n")
        .replace("ANY=00000000\n", "ANY=00000000000000000000000000000000\n")
        // `hexaddr` knows IPv4 only; [::] is the any-address.
        .replace(r#"LISTEN=$(hexaddr "$BIND"):$HP"#, "LISTEN=$LISTEN_ANY")
        .replace(r#"--bind "$BIND""#, r#"--bind ::"#)
}

const WEB_SCRIPT: &str = r#"#!/bin/sh
# web: HTTP service for the ha-lab answering `uname -n` (resource.d style).
# usage: web [VIP] start|stop|status
# A handover's client gap includes this script's stop and start: they use shell builtins
# where they can (a fork costs milliseconds on a loaded host) and wait on the server's exit.
PORT=__PORT__
for op in "$@"; do :; done
VIP=
if [ $# -ge 2 ]; then VIP=${1%%/*}; fi
BIND=${VIP:-0.0.0.0}
TAG=web-${VIP:-any}-$PORT
D=/run/$TAG
PIDF=/run/$TAG.pid
NET=/proc/net/tcp
ANY=00000000

exists() {  # process $1 runs and is not a zombie
  st=
  read -r st 2>/dev/null < "/proc/$1/stat"
  st=${st##*) }; st=${st%% *}
  [ -n "$st" ] && [ "$st" != Z ]
}

alive() {  # our server runs (its pid from the pidfile, alive, named so)
  [ -f "$PIDF" ] || return 1
  pid=
  read -r pid 2>/dev/null < "$PIDF"
  [ -n "$pid" ] && exists "$pid" || return 1
  cmd=
  read -r cmd 2>/dev/null < "/proc/$pid/cmdline"  # its NUL separators dropped
  case $cmd in *httpd*|*http.server*) return 0;; esac
  return 1
}

gone() {  # waits up to $1 s for the server to exit, on the exit itself: a pidfd (perl-base)
  rc=2
  if command -v perl >/dev/null 2>&1; then
    perl -e '$fd = syscall(434, $ARGV[0] + 0, 0); exit 2 if $fd < 0;
      vec($r = "", $fd, 1) = 1; exit(select($r, undef, undef, $ARGV[1]) > 0 ? 0 : 1)' "$pid" "$1"
    rc=$?
  fi
  if [ $rc = 2 ]; then  # no perl or no pidfd_open (434 on every arch but alpha; Linux >= 5.3)
    i=0; while alive && [ $i -lt $(($1 * 100)) ]; do sleep 0.01; i=$((i+1)); done
  fi
  ! alive
}

hexaddr() {  # a.b.c.d as /proc/net/tcp prints it on a little-endian machine
  old=$IFS; IFS=.; set -- $1; IFS=$old
  printf '%02X%02X%02X%02X' "$4" "$3" "$2" "$1"
}

listening() {  # a listening socket on $LISTEN (our address) or $LISTEN_ANY
  # The kernel lists listening sockets first: stop at the first other one, since the
  # builtin `read` takes a byte per call and a busy server leaves thousands in TIME_WAIT.
  while read -r n l r s _; do
    [ "$n" = sl ] && continue
    [ "$s" = 0A ] || return 1
    [ "$r" = "$ANY:0000" ] || continue
    [ "$l" = "$LISTEN" ] || [ "$l" = "$LISTEN_ANY" ] && return 0
  done 2>/dev/null < "$NET"
  return 1
}

case "$op" in
start)
  if alive; then echo "web running"; exit 0; fi
  [ -d "$D" ] || mkdir -p "$D" || exit 1
  read -r host < /proc/sys/kernel/hostname && echo "$host" > "$D/index.html" || exit 1
  HP=$(printf '%04X' "$PORT")
  LISTEN_ANY=$ANY:$HP
  LISTEN=$(hexaddr "$BIND"):$HP
  # Whether busybox has httpd is asked once per server dir (two programs run less per start).
  if [ -e "$D/.busybox-httpd" ] || { command -v busybox >/dev/null 2>&1 &&
      busybox --list 2>/dev/null | grep -qx httpd && : > "$D/.busybox-httpd"; }; then
    setsid busybox httpd -f -p "$BIND:$PORT" -h "$D" </dev/null >>"$D/log" 2>&1 &
  else
    PY=/usr/bin/python3
    [ -x "$PY" ] || PY=$(command -v python3) || { echo "web: neither busybox httpd nor python3 found"; exit 1; }
    setsid "$PY" -m http.server "$PORT" --bind "$BIND" --directory "$D" </dev/null >>"$D/log" 2>&1 &
  fi
  child=$!
  echo $child > "$PIDF"
  i=0
  while [ $i -lt 2000 ]; do
    # Started only once our own server (not a stray's) listens.
    if listening && alive; then echo "web started"; exit 0; fi
    # Not `alive`: until the child has exec'd the server its command line is still ours,
    # and a start that gave up then would leave the server running with no pidfile.
    if ! exists "$child"; then echo "web died at start (see $D/log)"; rm -f "$PIDF"; exit 1; fi
    sleep 0.005; i=$((i+1))
  done
  # A start that fails leaves nothing behind.
  kill -9 "$child" 2>/dev/null; rm -f "$PIDF"
  echo "web did not listen within 10 s"; exit 1;;
stop)
  if alive; then
    kill "$pid" 2>/dev/null
    gone 3 || { kill -9 "$pid" 2>/dev/null; gone 2; } || { echo "web would not stop"; exit 1; }
  fi
  rm -f "$PIDF"; echo "web stopped"; exit 0;;
status|monitor)
  if alive; then echo "web running"; exit 0; fi
  echo "web stopped"; exit 3;;
*)
  echo "usage: $0 [VIP] {start|stop|status}"; exit 2;;
esac
"#;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn script_is_valid_sh_with_the_port() {
        let s = web_script(8080);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("PORT=8080\n"));
        assert!(!s.contains("__PORT__"));
        let out = Command::new("sh").args(["-n", "-c", &s]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn web6_listens_on_ipv6() {
        let s = web6_script(8080);
        assert!(s.contains("BIND=${VIP:-[::]}"));
        assert!(s.contains("/proc/net/tcp6"));
        assert!(s.contains("TAG=web6-$PORT"));
        assert!(s.contains("--bind ::"));
        let ok = Command::new("sh").args(["-n", "-c", &s]).status().unwrap();
        assert!(ok.success());
    }

    #[test]
    fn unknown_op_and_status_of_a_stopped_service() {
        let s = web_script(1);
        let run = |args: &[&str]| {
            let mut c = Command::new("sh");
            c.args(["-c", &s, "web"]).args(args);
            c.output().unwrap()
        };
        let o = run(&["198.18.99.1", "bogus"]);
        assert_eq!(o.status.code(), Some(2));
        // No server for a TEST-NET address on port 1 runs here: it must say stopped.
        let o = run(&["198.18.99.1", "status"]);
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "web stopped");
    }

    /// Runs the web script in a private network and mount namespace (its own /run) as root,
    /// behind a stand-in `busybox` that runs `server_py` (python) with the httpd arguments:
    /// `steps` is shell run there with `$WEB` the script. Whatever the steps left running
    /// there is ended by PID and reported as `left=PID` (only ours can be in a new namespace).
    /// None when the test cannot run here (the gate said why).
    fn in_private_ns(test: &str, server_py: &str, steps: &str) -> Option<String> {
        if !crate::gate::root_available(test)
            || !crate::gate::lab_needs(
                test,
                crate::gate::program_installed("/usr/bin/python3")
                    && crate::gate::program_installed("/usr/bin/unshare"),
                "python3 and unshare (util-linux) are needed: apt-get install python3 util-linux",
            )
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web");
        std::fs::write(&web, web_script(8080)).unwrap();
        let fake = dir.path().join("bin");
        std::fs::create_dir(&fake).unwrap();
        let server = dir.path().join("server.py");
        std::fs::write(&server, server_py).unwrap();
        let busybox = format!(
            "#!/bin/sh\ncase \"$1\" in\n--list) echo httpd ;;\nhttpd) shift; exec /usr/bin/python3 {} \"$@\" ;;\n*) exit 1 ;;\nesac\n",
            server.display()
        );
        let bb = fake.join("busybox");
        std::fs::write(&bb, busybox).unwrap();
        std::fs::set_permissions(&bb, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let inner = format!(
            r#"set -u
mount -t tmpfs tmpfs /run || exit 90
ip link set lo up
export PATH={fake}:$PATH
WEB={web}
{steps}
me=$(readlink /proc/self/ns/net)
for p in /proc/[0-9]*; do
  n=${{p#/proc/}}
  [ "$n" = $$ ] && continue
  if [ "$(readlink $p/ns/net 2>/dev/null)" = "$me" ] && [ -n "$(tr '\0' ' ' < $p/cmdline 2>/dev/null | grep -e http.server -e server.py)" ]; then
    echo "left=$n"; kill -9 "$n"
  fi
done
"#,
            fake = fake.display(),
            web = web.display()
        );
        let out = std::process::Command::new("/usr/bin/unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &inner,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        Some(text)
    }

    /// Soak seed 1001, fault 400: a start that looked at the child before it had exec'd the
    /// server saw a command line that was not the server's, said "died at start" and removed
    /// the pidfile; the server came up a moment later with nothing to stop it. Here the
    /// server takes 400 ms to appear behind a stand-in busybox whose command line names
    /// neither httpd nor http.server meanwhile: the start must wait for it, and a stop must
    /// leave nothing listening.
    #[test]
    fn a_server_slow_to_exec_is_waited_for_not_left_behind() {
        // After 400 ms in a process whose command line does not say what it will be.
        let slow = r#"import os, sys, time
time.sleep(0.4)
a = sys.argv[1:]
addr, port = a[a.index('-p') + 1].rsplit(':', 1)
d = a[a.index('-h') + 1]
os.execv(sys.executable, [sys.executable, '-m', 'http.server', port, '--bind', addr, '--directory', d])
"#;
        let steps = r#"sh $WEB start; echo "start=$?"
sh $WEB status; echo "status=$?"
sh $WEB stop; echo "stop=$?""#;
        let Some(text) = in_private_ns(
            "a_server_slow_to_exec_is_waited_for_not_left_behind",
            slow,
            steps,
        ) else {
            return;
        };
        assert!(
            text.contains("start=0"),
            "the start gave up on a server still coming up: {text}"
        );
        assert!(text.contains("status=0"), "{text}");
        assert!(text.contains("stop=0"), "{text}");
        assert!(!text.contains("left="), "a server was left running: {text}");
    }

    /// `stop` waits on the server's exit, bounded: a server that ignores SIGTERM is
    /// SIGKILLed after 3 s, the stop still succeeds and nothing is left listening; a server
    /// that honours SIGTERM is gone well before that. Private network and mount namespace.
    #[test]
    fn stop_waits_on_the_exit_and_kills_a_server_that_ignores_sigterm() {
        // python's http.server with the httpd values; with DEAF set, SIGTERM is ignored
        // first (kept across exec).
        let server = r#"import os, signal, sys
if os.environ.get('DEAF'):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
a = sys.argv[1:]
addr, port = a[a.index('-p') + 1].rsplit(':', 1)
d = a[a.index('-h') + 1]
os.execv(sys.executable, [sys.executable, '-m', 'http.server', port, '--bind', addr, '--directory', d])
"#;
        let ms = r#"$(( ($(date +%s%N) - t) / 1000000 ))"#;
        let steps = format!(
            r#"sh $WEB start; echo "start=$?"
t=$(date +%s%N); sh $WEB stop; echo "stop=$? ms={ms}"
DEAF=1 sh $WEB start; echo "deaf_start=$?"
t=$(date +%s%N); sh $WEB stop; echo "deaf_stop=$? deaf_ms={ms}"
sh $WEB status; echo "status=$?""#
        );
        let Some(text) = in_private_ns(
            "stop_waits_on_the_exit_and_kills_a_server_that_ignores_sigterm",
            server,
            &steps,
        ) else {
            return;
        };
        let field = |k: &str| -> u64 {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k}= in {text}"))
        };
        assert_eq!(field("start"), 0, "{text}");
        assert_eq!(field("stop"), 0, "{text}");
        assert_eq!(field("deaf_start"), 0, "{text}");
        assert_eq!(
            field("deaf_stop"),
            0,
            "the SIGKILL after 3 s must stop it: {text}"
        );
        assert_eq!(field("status"), 3, "{text}");
        // The deaf server was waited for (3 s) before the SIGKILL, and not for ever; the
        // other one went at its SIGTERM (generous bound: the host is shared).
        let (quick, deaf) = (field("ms"), field("deaf_ms"));
        assert!((2900..=8000).contains(&deaf), "deaf stop took {deaf} ms");
        assert!(
            quick < 2500,
            "a stop of a server that exits at SIGTERM took {quick} ms"
        );
        assert!(!text.contains("left="), "a server was left running: {text}");
    }
}
