# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hactl_global_optspecs
    string join \n socket= h/help V/version
end

function __fish_hactl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hactl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hactl_using_subcommand
    set -l cmd (__fish_hactl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hactl -n "__fish_hactl_needs_command" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_needs_command" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_needs_command" -s V -l version -d 'Print version'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "status" -d 'Show this node, the peer, links and resource groups'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "check" -d 'Validate a configuration directory offline with the checks `had` makes at start'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "standby" -d 'Hand resource groups to the peer (planned maintenance); Heartbeat\'s hb_standby'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "takeover" -d 'Take resource groups to this node (the peer stands by for them); hb_takeover'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "cleanup" -d 'Forget resource failures on this node after fixing their cause'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "reload" -d 'Re-read the configuration directory (as SIGHUP); an invalid one is refused'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "log" -d 'Recent cluster transitions with reasons and timings'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "drill" -d 'Run a failover drill scenario (etc/drills/*.toml) on this node, as root'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "export" -d 'Write the equivalent configuration for another cluster stack'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "import" -d 'Convert another tool\'s configuration into had\'s files'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "cl-status" -d 'Heartbeat\'s cl_status (also available as a `cl_status` link to hactl)'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "gen-docs" -d 'Packaging: write man pages and shell completions under OUT (`just deb` runs it)'
complete -c hactl -n "__fish_hactl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand status" -l watch -d 'Refresh every SECS seconds until interrupted' -r
complete -c hactl -n "__fish_hactl_using_subcommand status" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand status" -l json -d 'Machine-readable output (schema in docs/status-json.md); one line per refresh'
complete -c hactl -n "__fish_hactl_using_subcommand status" -l nagios -d 'One line for Nagios/Icinga: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, perfdata'
complete -c hactl -n "__fish_hactl_using_subcommand status" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand check" -l config-dir -r -F
complete -c hactl -n "__fish_hactl_using_subcommand check" -l state-dir -d 'had\'s state directory (hb_uuid, hb_generation, the FIFO), checked for unsafe owners, modes and links as had checks it at start' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand check" -l node-name -d 'Check as this node (default: this host\'s name)' -r
complete -c hactl -n "__fish_hactl_using_subcommand check" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hactl -n "__fish_hactl_using_subcommand standby" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand standby" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hactl -n "__fish_hactl_using_subcommand takeover" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand takeover" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hactl -n "__fish_hactl_using_subcommand cleanup" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand cleanup" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand reload" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand log" -s n -l last -d 'How many entries, newest last' -r
complete -c hactl -n "__fish_hactl_using_subcommand log" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand log" -l json -d 'One JSON object per line'
complete -c hactl -n "__fish_hactl_using_subcommand log" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand drill" -l config-dir -d 'Where resource.d scripts are looked up when /etc/init.d has none' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand drill" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand drill" -l json -d 'Print the report as JSON instead of Markdown'
complete -c hactl -n "__fish_hactl_using_subcommand drill" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand export; and not __fish_seen_subcommand_from pacemaker help" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand export; and not __fish_seen_subcommand_from pacemaker help" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand export; and not __fish_seen_subcommand_from pacemaker help" -f -a "pacemaker" -d 'Corosync 3 + Pacemaker 2: cib.xml, crm.txt (crm configure script), corosync.conf'
complete -c hactl -n "__fish_hactl_using_subcommand export; and not __fish_seen_subcommand_from pacemaker help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -l config-dir -d 'The had/Heartbeat configuration to read' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -l out -d 'Where to write the files (created if missing; existing files are replaced)' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -l node -d 'A node\'s address(es), one per Corosync link; repeat per node. A name not in ha.cf adds a node (Pacemaker is not limited to two)' -r
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -l cluster-name -d 'Corosync\'s cluster_name' -r
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from pacemaker" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "pacemaker" -d 'Corosync 3 + Pacemaker 2: cib.xml, crm.txt (crm configure script), corosync.conf'
complete -c hactl -n "__fish_hactl_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand import; and not __fish_seen_subcommand_from keepalived help" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand import; and not __fish_seen_subcommand_from keepalived help" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand import; and not __fish_seen_subcommand_from keepalived help" -f -a "keepalived" -d 'Read keepalived.conf (and the peer\'s with --peer) and write ha.cf, haresources, authkeys and had.toml; what cannot be carried is listed with its line'
complete -c hactl -n "__fish_hactl_using_subcommand import; and not __fish_seen_subcommand_from keepalived help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l peer -d 'The peer\'s keepalived.conf: priorities, checks and addresses of both nodes' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l out -d 'Where to write the files (created if missing)' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l node -d 'This node\'s name (`uname -n`); default: global_defs router_id, else `node1`' -r
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l peer-node -d 'The peer\'s name; default: its router_id, else `node2`' -r
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l config-id -d 'keepalived\'s config id for `@id` lines (`keepalived -i`); default: the node name' -r
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l peer-config-id -d 'The peer\'s config id; with no --peer, FILE is read a second time as the peer\'s' -r
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l peer-priority -d 'The peer\'s priority, when its file is not at hand (weighted checks need it)' -r
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l force -d 'Overwrite files already in the output directory'
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -l dry-run -d 'Print what would be written; write nothing'
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from keepalived" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "keepalived" -d 'Read keepalived.conf (and the peer\'s with --peer) and write ha.cf, haresources, authkeys and had.toml; what cannot be carried is listed with its line'
complete -c hactl -n "__fish_hactl_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand cl-status" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand gen-docs" -l config-md -d 'The configuration reference the file-format pages are made from' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand gen-docs" -l socket -d 'Control socket of the daemon' -r -F
complete -c hactl -n "__fish_hactl_using_subcommand gen-docs" -s h -l help -d 'Print help'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "status" -d 'Show this node, the peer, links and resource groups'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "check" -d 'Validate a configuration directory offline with the checks `had` makes at start'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "standby" -d 'Hand resource groups to the peer (planned maintenance); Heartbeat\'s hb_standby'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "takeover" -d 'Take resource groups to this node (the peer stands by for them); hb_takeover'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "cleanup" -d 'Forget resource failures on this node after fixing their cause'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "reload" -d 'Re-read the configuration directory (as SIGHUP); an invalid one is refused'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "log" -d 'Recent cluster transitions with reasons and timings'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "drill" -d 'Run a failover drill scenario (etc/drills/*.toml) on this node, as root'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "export" -d 'Write the equivalent configuration for another cluster stack'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "import" -d 'Convert another tool\'s configuration into had\'s files'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "cl-status" -d 'Heartbeat\'s cl_status (also available as a `cl_status` link to hactl)'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "gen-docs" -d 'Packaging: write man pages and shell completions under OUT (`just deb` runs it)'
complete -c hactl -n "__fish_hactl_using_subcommand help; and not __fish_seen_subcommand_from status check standby takeover cleanup reload log drill export import cl-status gen-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hactl -n "__fish_hactl_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "pacemaker" -d 'Corosync 3 + Pacemaker 2: cib.xml, crm.txt (crm configure script), corosync.conf'
complete -c hactl -n "__fish_hactl_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "keepalived" -d 'Read keepalived.conf (and the peer\'s with --peer) and write ha.cf, haresources, authkeys and had.toml; what cannot be carried is listed with its line'
