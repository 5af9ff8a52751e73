//! What one more address costs the daemon's heap, counted by the allocator: a group of N
//! addresses built through the daemon's own start-up path (issue 14: idle RSS flat from 1
//! to 1,000 addresses).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ha_config::{NodeName, Target};

struct Counting;

thread_local! {
    // Per thread: the test harness runs other tests beside this one.
    static LIVE: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
    // The most bytes live since the last `reset_peak`: what was touched on the way.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// glibc's chunk for a request: 8 bytes of header, 16-byte aligned, 32 at least.
fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

fn count(size: usize, sign: isize) {
    let _ = LIVE.try_with(|l| {
        let (b, n) = l.get();
        let b = b + sign * chunk(size);
        l.set((b, n + sign));
        let _ = PEAK.try_with(|p| p.set(p.get().max(b)));
    });
}

fn reset_peak() {
    PEAK.with(|p| p.set(live().0));
}

fn peak() -> isize {
    PEAK.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn live() -> (isize, isize) {
    LIVE.with(Cell::get)
}

fn config_dir(addresses: usize) -> tempfile::TempDir {
    use std::os::unix::fs::DirBuilderExt;
    let base = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/run/had-tests")
    } else {
        std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".had-tests")
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .expect("base dir");
    let d = tempfile::Builder::new()
        .prefix("memory-")
        .tempdir_in(&base)
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut line = String::from("a");
    for i in 0..addresses {
        line.push_str(&format!(
            " IPaddr::198.19.{}.{}/16/lo",
            i / 250,
            1 + i % 250
        ));
    }
    line.push('\n');
    let cf = "node a b\nbcast lo\nkeepalive 1\ndeadtime 5\n";
    for (name, text, mode) in [
        ("ha.cf", cf, 0o644),
        ("haresources", line.as_str(), 0o644),
        ("authkeys", "auth 1\n1 sha1 0123456789abcdef0\n", 0o600),
    ] {
        let p = d.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    d
}

/// Bytes (in glibc chunks) and blocks each stage of the daemon's start-up keeps.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    validated: (isize, isize),
    groups: (isize, isize),
    cluster: (isize, isize),
    guard: (isize, isize),
    /// The most the guard had live on the way, over what it had before.
    guard_peak: (isize, isize),
}

fn sub(a: (isize, isize), b: (isize, isize)) -> (isize, isize) {
    (a.0 - b.0, a.1 - b.1)
}

fn kept(dir: &Path) -> Kept {
    let local = NodeName::from("a");
    let t0 = live();
    let checked = ha_daemon::validate::validate(
        dir,
        &Target {
            node: Some(local.clone()),
            here: false,
            resolve: &|_, _| None,
        },
        &ha_daemon::validate::Dirs::default(),
    )
    .expect("valid");
    let keys = checked.keys();
    let ha_daemon::validate::Validated {
        mut config,
        resources,
        ..
    } = checked;
    // As had's main does: the kept configuration has no spans.
    config.haresources.forget_spans();
    let t1 = live();
    let groups = ha_daemon::groups::Groups::new(keys, resources);
    let t2 = live();
    let infos = ha_daemon::daemon::group_infos(&config, &local);
    let t3 = live();
    reset_peak();
    let guard = ha_daemon::guard::held_record(&groups);
    let t4 = live();
    let guard_peak = (peak() - t3.0, 0);
    let k = Kept {
        validated: sub(t1, t0),
        groups: sub(t2, t1),
        cluster: sub(t3, t2),
        guard: sub(t4, t3),
        guard_peak,
    };
    drop((guard, infos, groups, config));
    k
}

#[test]
fn per_address_heap() {
    let (one, many) = (config_dir(1), config_dir(1001));
    let a = kept(one.path());
    let b = kept(many.path());
    let per = |f: fn(&Kept) -> (isize, isize)| {
        let (x, y) = (f(&a), f(&b));
        ((y.0 - x.0) / 1000, (y.1 - x.1) as f64 / 1000.0)
    };
    eprintln!(
        "sizes: Resource {} IpResource {} ResourceSpec {} Span {} GroupInfo {}",
        size_of::<ha_agents::Resource>(),
        size_of::<ha_agents::IpResource>(),
        size_of::<ha_config::ResourceSpec>(),
        size_of::<ha_config::diag::Span>(),
        size_of::<ha_daemon::cluster::GroupInfo>(),
    );
    eprintln!("per address (bytes, blocks):");
    eprintln!(
        "  validated (config + plans + resources) {:?}",
        per(|k| k.validated)
    );
    eprintln!("  groups {:?}", per(|k| k.groups));
    eprintln!("  cluster's group infos {:?}", per(|k| k.cluster));
    eprintln!("  guard's record {:?}", per(|k| k.guard));
    eprintln!("  guard's peak on the way {:?}", per(|k| k.guard_peak));
    // Flat within 10 % from 1 to 1,000 addresses: ≈ 0.3 MiB over a base of ≈ 3 MiB (node1's
    // had and guard, idle), for everything both processes keep per address and what their
    // heaps are left with around it. ≈ 147 bytes here on 3 Dec 2026 (394 before thin words,
    // tokens kept whole, one word for interface and label, shared burst shapes and counters, the
    // cluster sharing haresources' lists, one allocation per group for its resources).
    let daemon = per(|k| k.validated).0 + per(|k| k.groups).0 + per(|k| k.cluster).0;
    assert!(daemon <= 170, "the daemon keeps {daemon} bytes per address");
    let guard = per(|k| k.guard).0;
    assert!(guard <= 64, "the guard keeps {guard} bytes per address");
}
