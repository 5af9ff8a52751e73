//! A release `had` is linked with the functions it runs from start-up to idle placed together
//! (text-order/symbols.txt, written by `just text-order`). The kernel maps a 64 KiB block of
//! code around every page fault; with those functions spread over the binary, an idle node
//! kept most of its code resident (docs/benchmarks.md, idle RSS).
//!
//! Only lld reads the list, and rustc links this target with its own lld from 1.90 on; with
//! an older rustc, another linker or `HA_TEXT_ORDER=off` the link is the plain one. A name
//! the list has and the binary lacks (after a code change) is skipped, not an error.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let list = PathBuf::from(dir).join("text-order").join("symbols.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    // RUSTFLAGS is not among them: a change of flags reruns this script anyway.
    for var in [
        "HA_TEXT_ORDER",
        "HA_TEXT_MAP",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || !links_with_rust_lld()
    {
        return;
    }
    // `just text-order` reads the link's map: the release binary has no symbol table, and
    // a build that kept one would be another profile, with other symbol hashes.
    if let Some(map) = env::var_os("HA_TEXT_MAP") {
        println!(
            "cargo:rustc-link-arg-bin=had=-Wl,-Map={}",
            PathBuf::from(map).display()
        );
        // The ordering file takes symbols as the object files name them.
        println!("cargo:rustc-link-arg-bin=had=-Wl,--no-demangle");
    }
    if env::var("HA_TEXT_ORDER").as_deref() == Ok("off") || !list.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=had=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bin=had=-Wl,--no-warn-symbol-ordering");
}

/// rustc ≥ 1.90 and nothing that chooses another linker.
fn links_with_rust_lld() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
    {
        return false;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(Some(1)), Some(Some(m))) if m >= 90)
}
