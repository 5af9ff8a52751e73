complete -c had -l config-dir -d 'Directory with ha.cf, haresources, authkeys (and had.toml)' -r -F
complete -c had -l node-name -d 'This node\'s name (default: `uname -n`)' -r
complete -c had -l state-dir -d 'Where hb_uuid and hb_generation live' -r -F
complete -c had -l run-dir -d 'Runtime directory (control socket)' -r -F
complete -c had -l socket -d 'Control socket path (default: RUN_DIR/had.sock)' -r -F
complete -c had -s f -l foreground -d 'Stay in the foreground (always the case; accepted for Heartbeat\'s `-f`)'
complete -c had -s d -l debug -d 'Debug logging'
complete -c had -s h -l help -d 'Print help'
complete -c had -s V -l version -d 'Print version'
