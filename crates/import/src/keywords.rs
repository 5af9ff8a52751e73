//! keepalived 2.2's keywords by context, and what the import does with each: carry it
//! (a `Kind` the model reads), list it as not carried (with the reason), or ignore it
//! (it changes nothing had does). A word that is none of these but close to one is a typo.

/// Where a keyword appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    Top,
    Global,
    Script,
    Process,
    Instance,
    Auth,
    SyncGroup,
}

/// What a known keyword is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GlobalDefs,
    Script,
    TrackProcess,
    Instance,
    SyncGroup,
    RouterId,
    McastGroup4,
    ScriptCmd,
    Interval,
    Timeout,
    Weight,
    Rise,
    Fall,
    ProcessName,
    Delay,
    State,
    Interface,
    Vrid,
    Priority,
    AdvertInt,
    Auth,
    AuthPass,
    AuthType,
    Vips,
    VipsExcluded,
    Nopreempt,
    PreemptDelay,
    UnicastSrc,
    UnicastPeer,
    TrackScript,
    TrackInterface,
    DontTrackPrimary,
    NotifyMaster,
    NotifyBackup,
    NotifyFault,
    NotifyStop,
    Notify,
    GroupMembers,
    /// Known, not carried: the reason.
    Dropped(&'static str),
    /// Known, and nothing had does depends on it.
    Ignored,
}

const LVS: &str = "LVS/IPVS load balancing is not had's job: keep keepalived's check-only \
                   mode (`keepalived --check`) or ipvsadm rules for it, or move to HAProxy";
const SMTP: &str = "SMTP alerts: use a `[notify]` hook that sends mail";
const GARP: &str = "gratuitous ARP tuning: had sends [arp] count/interval (default 5 × 200 ms) \
                    and an optional [arp] refresh";
const BFD: &str = "BFD is not supported; had detects a dead peer by its heartbeats (deadtime)";
const VMAC: &str = "VRRP virtual MAC: had moves addresses and announces them with gratuitous ARP";
const ROUTES: &str = "routes and rules are not managed; use a resource script that adds them";
const SCRIPT_SEC: &str = "had runs monitors and hooks as root from root-owned paths (StrictModes)";
const VRRP_ONLY: &str =
    "VRRP protocol detail with no had equivalent (had speaks Heartbeat's protocol)";
const SNMP: &str = "SNMP is not supported; use `hactl status --json`";
const SYNC_DAEMON: &str = "the LVS connection sync daemon is not had's job";
const NS: &str = "network namespaces and instances are not carried: run had inside the namespace";
const TRACK_FILE: &str = "track_file: use a `command:` monitor that reads the file";

fn table(ctx: Ctx) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match ctx {
        Ctx::Top => &[
            ("global_defs", GlobalDefs),
            ("vrrp_script", Script),
            ("vrrp_track_process", TrackProcess),
            ("vrrp_instance", Instance),
            ("vrrp_sync_group", SyncGroup),
            ("virtual_server", Dropped(LVS)),
            ("virtual_server_group", Dropped(LVS)),
            ("static_ipaddress", Dropped(ROUTES)),
            ("static_routes", Dropped(ROUTES)),
            ("static_rules", Dropped(ROUTES)),
            ("bfd_instance", Dropped(BFD)),
            ("track_file", Dropped(TRACK_FILE)),
            ("vrrp_track_file", Dropped(TRACK_FILE)),
            ("garp_group", Dropped(GARP)),
            ("linkbeat_interfaces", Ignored),
            ("net_namespace", Dropped(NS)),
            ("net_namespace_ipvs", Dropped(NS)),
            ("instance", Dropped(NS)),
            ("use_pid_dir", Ignored),
            ("child_wait_time", Ignored),
            ("local_name", Ignored),
        ],
        Ctx::Global => &[
            ("router_id", RouterId),
            ("vrrp_mcast_group4", McastGroup4),
            (
                "vrrp_mcast_group6",
                Dropped("IPv6 multicast heartbeats: use `ucast` in ha.cf"),
            ),
            ("notification_email", Dropped(SMTP)),
            ("notification_email_from", Dropped(SMTP)),
            ("smtp_server", Dropped(SMTP)),
            ("smtp_helo_name", Dropped(SMTP)),
            ("smtp_connect_timeout", Dropped(SMTP)),
            ("smtp_alert", Dropped(SMTP)),
            ("smtp_alert_vrrp", Dropped(SMTP)),
            ("smtp_alert_checker", Dropped(SMTP)),
            ("email_faults", Dropped(SMTP)),
            ("checker_log_all_failures", Ignored),
            ("no_email_faults", Ignored),
            ("lvs_timeouts", Dropped(LVS)),
            ("lvs_flush", Dropped(LVS)),
            ("lvs_flush_on_stop", Dropped(LVS)),
            ("lvs_sync_daemon", Dropped(SYNC_DAEMON)),
            ("lvs_id", Dropped(LVS)),
            ("lvs_netlink_cmd_rcv_bufs", Dropped(LVS)),
            ("lvs_netlink_cmd_rcv_bufs_force", Dropped(LVS)),
            ("lvs_netlink_monitor_rcv_bufs", Dropped(LVS)),
            ("lvs_netlink_monitor_rcv_bufs_force", Dropped(LVS)),
            ("lvs_notify_fifo", Dropped(LVS)),
            ("lvs_notify_fifo_script", Dropped(LVS)),
            ("vrrp_garp_master_delay", Dropped(GARP)),
            ("vrrp_garp_master_repeat", Dropped(GARP)),
            ("vrrp_garp_lower_prio_delay", Dropped(GARP)),
            ("vrrp_garp_lower_prio_repeat", Dropped(GARP)),
            ("vrrp_garp_master_refresh", Dropped(GARP)),
            ("vrrp_garp_master_refresh_repeat", Dropped(GARP)),
            ("vrrp_garp_interval", Dropped(GARP)),
            ("vrrp_gna_interval", Dropped(GARP)),
            ("vrrp_min_garp", Dropped(GARP)),
            ("vrrp_lower_prio_no_advert", Dropped(VRRP_ONLY)),
            ("vrrp_higher_prio_send_advert", Dropped(VRRP_ONLY)),
            ("vrrp_version", Dropped(VRRP_ONLY)),
            ("vrrp_iptables", Dropped(VRRP_ONLY)),
            ("vrrp_ipsets", Dropped(VRRP_ONLY)),
            ("nftables", Dropped(VRRP_ONLY)),
            ("nftables_counters", Dropped(VRRP_ONLY)),
            ("nftables_ifindex", Dropped(VRRP_ONLY)),
            ("nftables_priority", Dropped(VRRP_ONLY)),
            ("vrrp_check_unicast_src", Dropped(VRRP_ONLY)),
            ("vrrp_skip_check_adv_addr", Dropped(VRRP_ONLY)),
            ("vrrp_strict", Dropped(VRRP_ONLY)),
            (
                "vrrp_priority",
                Dropped("process scheduling: had honours ha.cf `realtime`"),
            ),
            ("checker_priority", Ignored),
            ("bfd_priority", Ignored),
            ("vrrp_no_swap", Ignored),
            ("checker_no_swap", Ignored),
            ("bfd_no_swap", Ignored),
            ("vrrp_rt_priority", Ignored),
            ("checker_rt_priority", Ignored),
            ("bfd_rt_priority", Ignored),
            ("vrrp_rlimit_rttime", Ignored),
            ("checker_rlimit_rttime", Ignored),
            ("bfd_rlimit_rttime", Ignored),
            ("vrrp_cpu_affinity", Ignored),
            ("checker_cpu_affinity", Ignored),
            ("vrrp_netlink_cmd_rcv_bufs", Ignored),
            ("vrrp_netlink_cmd_rcv_bufs_force", Ignored),
            ("vrrp_netlink_monitor_rcv_bufs", Ignored),
            ("vrrp_netlink_monitor_rcv_bufs_force", Ignored),
            ("vrrp_rx_bufs_policy", Ignored),
            ("vrrp_rx_bufs_multiplier", Ignored),
            (
                "vrrp_startup_delay",
                Dropped("had waits for the peer's report (initdead) instead"),
            ),
            (
                "vrrp_notify_fifo",
                Dropped("notify FIFO: use `[notify] command`"),
            ),
            (
                "vrrp_notify_fifo_script",
                Dropped("notify FIFO: use `[notify] command`"),
            ),
            (
                "notify_fifo",
                Dropped("notify FIFO: use `[notify] command`"),
            ),
            (
                "notify_fifo_script",
                Dropped("notify FIFO: use `[notify] command`"),
            ),
            ("vrrp_notify_priority_changes", Ignored),
            ("enable_script_security", Dropped(SCRIPT_SEC)),
            ("script_user", Dropped(SCRIPT_SEC)),
            ("max_auto_priority", Ignored),
            ("min_auto_priority_delay", Ignored),
            ("enable_traps", Dropped(SNMP)),
            ("enable_snmp_vrrp", Dropped(SNMP)),
            ("enable_snmp_keepalived", Dropped(SNMP)),
            ("enable_snmp_checker", Dropped(SNMP)),
            ("enable_snmp_rfc", Dropped(SNMP)),
            ("enable_snmp_rfcv2", Dropped(SNMP)),
            ("enable_snmp_rfcv3", Dropped(SNMP)),
            ("snmp_socket", Dropped(SNMP)),
            ("dynamic_interfaces", Ignored),
            ("no_checker_emails", Ignored),
            (
                "enable_dbus",
                Dropped("D-Bus is not supported; use `hactl status --json`"),
            ),
            ("dbus_service_name", Ignored),
            ("default_interface", Ignored),
            ("vrrp_garp_extra_if", Dropped(GARP)),
            ("vrrp_dont_track_primary", Ignored),
            ("net_namespace", Dropped(NS)),
            ("namespace_with_ipsets", Ignored),
            ("instance", Dropped(NS)),
            ("process_names", Ignored),
            ("process_name", Ignored),
            ("vrrp_process_name", Ignored),
            ("checker_process_name", Ignored),
            ("bfd_process_name", Ignored),
            ("use_symlink_paths", Ignored),
            ("script_security", Dropped(SCRIPT_SEC)),
            ("tmp_config_directory", Ignored),
            (
                "startup_script",
                Dropped("run it from a resource script or systemd"),
            ),
            ("startup_script_timeout", Ignored),
            (
                "shutdown_script",
                Dropped("run it from a resource script or systemd"),
            ),
            ("shutdown_script_timeout", Ignored),
            ("random_seed", Ignored),
            ("reload_check_config", Ignored),
            ("reload_time_file", Ignored),
            ("reload_repeat", Ignored),
            ("reload_file", Ignored),
            ("data_use_instance", Ignored),
            ("umask", Ignored),
            ("vrrp_track_process", Ignored),
            ("track_process", Ignored),
        ],
        Ctx::Script => &[
            ("script", ScriptCmd),
            ("interval", Interval),
            ("timeout", Timeout),
            ("weight", Weight),
            ("rise", Rise),
            ("fall", Fall),
            ("user", Dropped(SCRIPT_SEC)),
            (
                "init_fail",
                Dropped("had assumes a check passes until it fails `failures` times"),
            ),
        ],
        Ctx::Process => &[
            ("process", ProcessName),
            ("weight", Weight),
            ("delay", Delay),
            (
                "param_match",
                Dropped("had's process: check matches the program name only"),
            ),
            ("quorum", Dropped("had's process: check needs one process")),
            (
                "quorum_max",
                Dropped("had's process: check needs one process"),
            ),
            ("fork_delay", Ignored),
            ("terminate_delay", Ignored),
            (
                "full_command",
                Dropped("had's process: check matches the program name only"),
            ),
        ],
        Ctx::Instance => &[
            ("state", State),
            ("interface", Interface),
            ("virtual_router_id", Vrid),
            ("priority", Priority),
            ("advert_int", AdvertInt),
            ("authentication", Auth),
            ("virtual_ipaddress", Vips),
            ("virtual_ipaddress_excluded", VipsExcluded),
            ("nopreempt", Nopreempt),
            ("preempt_delay", PreemptDelay),
            ("unicast_src_ip", UnicastSrc),
            ("unicast_peer", UnicastPeer),
            ("track_script", TrackScript),
            ("track_interface", TrackInterface),
            ("track_process", TrackProcess),
            ("dont_track_primary", DontTrackPrimary),
            ("notify_master", NotifyMaster),
            ("notify_backup", NotifyBackup),
            ("notify_fault", NotifyFault),
            ("notify_stop", NotifyStop),
            ("notify", Notify),
            ("notify_deleted", Ignored),
            ("notify_master_rx_lower_pri", Dropped(VRRP_ONLY)),
            ("smtp_alert", Dropped(SMTP)),
            ("virtual_routes", Dropped(ROUTES)),
            ("virtual_rules", Dropped(ROUTES)),
            ("track_file", Dropped(TRACK_FILE)),
            ("track_bfd", Dropped(BFD)),
            ("lvs_sync_daemon_interface", Dropped(SYNC_DAEMON)),
            (
                "mcast_src_ip",
                Dropped("had sends from the interface's own address"),
            ),
            ("garp_master_delay", Dropped(GARP)),
            ("garp_master_repeat", Dropped(GARP)),
            ("garp_lower_prio_delay", Dropped(GARP)),
            ("garp_lower_prio_repeat", Dropped(GARP)),
            ("garp_master_refresh", Dropped(GARP)),
            ("garp_master_refresh_repeat", Dropped(GARP)),
            ("garp_extra_if", Dropped(GARP)),
            ("use_vmac", Dropped(VMAC)),
            ("vmac_xmit_base", Dropped(VMAC)),
            ("use_ipvlan", Dropped(VMAC)),
            ("native_ipv6", Ignored),
            ("version", Dropped(VRRP_ONLY)),
            (
                "accept",
                Dropped("had adds the address normally; the node accepts its traffic"),
            ),
            (
                "no_accept",
                Dropped("had adds the address normally; the node accepts its traffic"),
            ),
            ("strict_mode", Dropped(VRRP_ONLY)),
            ("skip_check_adv_addr", Dropped(VRRP_ONLY)),
            ("check_unicast_src", Dropped(VRRP_ONLY)),
            ("unicast_ttl", Dropped(VRRP_ONLY)),
            ("unicast_fault_no_peer", Dropped(VRRP_ONLY)),
            ("track_src_ip", Dropped(VRRP_ONLY)),
            ("kernel_rx_buf_size", Ignored),
            ("debug", Ignored),
            ("promote_secondaries", Ignored),
            ("linkbeat_use_polling", Ignored),
            ("lower_prio_no_advert", Dropped(VRRP_ONLY)),
            ("higher_prio_send_advert", Dropped(VRRP_ONLY)),
            ("down_timer_adverts", Dropped(VRRP_ONLY)),
            ("ipv6_addr_gen_mode", Ignored),
            ("no_track", Ignored),
            ("mcast_group4", Dropped("use `mcast` in ha.cf")),
        ],
        Ctx::Auth => &[("auth_pass", AuthPass), ("auth_type", AuthType)],
        Ctx::SyncGroup => &[
            ("group", GroupMembers),
            ("track_script", TrackScript),
            ("track_interface", TrackInterface),
            ("track_process", TrackProcess),
            ("notify_master", NotifyMaster),
            ("notify_backup", NotifyBackup),
            ("notify_fault", NotifyFault),
            ("notify_stop", NotifyStop),
            ("notify", Notify),
            ("smtp_alert", Dropped(SMTP)),
            ("global_tracking", Ignored),
            ("sync_group_tracking_weight", Ignored),
            ("track_file", Dropped(TRACK_FILE)),
            ("track_bfd", Dropped(BFD)),
        ],
    }
}

/// What `word` is in `ctx`, if keepalived knows it there.
pub fn lookup(ctx: Ctx, word: &str) -> Option<Kind> {
    table(ctx).iter().find(|(k, _)| *k == word).map(|(_, v)| *v)
}

/// A keyword of `ctx` within two edits of `word` (a typo), unless `word` is itself a keepalived
/// keyword of some other context (then it is misplaced, not misspelt).
pub fn near_miss(ctx: Ctx, word: &str) -> Option<&'static str> {
    const ALL: [Ctx; 7] = [
        Ctx::Top,
        Ctx::Global,
        Ctx::Script,
        Ctx::Process,
        Ctx::Instance,
        Ctx::Auth,
        Ctx::SyncGroup,
    ];
    if word.chars().count() < 4 || ALL.iter().any(|c| lookup(*c, word).is_some()) {
        return None;
    }
    table(ctx)
        .iter()
        .map(|(k, _)| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Where a keyword of some context belongs, for a misplaced one.
pub fn home_of(word: &str) -> Option<&'static str> {
    [
        (Ctx::Instance, "vrrp_instance block"),
        (Ctx::Global, "global_defs block"),
        (Ctx::Script, "vrrp_script block"),
        (Ctx::Process, "vrrp_track_process block"),
        (Ctx::SyncGroup, "vrrp_sync_group block"),
        (Ctx::Auth, "authentication block"),
        (Ctx::Top, "the top level"),
    ]
    .into_iter()
    .find(|(c, _)| lookup(*c, word).is_some())
    .map(|(_, h)| h)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_of_the_seeds() {
        assert_eq!(near_miss(Ctx::Top, "vrp_script"), Some("vrrp_script"));
        assert_eq!(near_miss(Ctx::Top, "vrp_instance"), Some("vrrp_instance"));
        assert_eq!(near_miss(Ctx::Instance, "priorty"), Some("priority"));
        assert_eq!(near_miss(Ctx::Instance, "noreempt"), Some("nopreempt"));
        // A keyword of another context is misplaced, not misspelt.
        assert_eq!(near_miss(Ctx::Instance, "interval"), None);
        assert_eq!(near_miss(Ctx::Top, "something_else"), None);
    }
}
