//! `hactl gen-docs` (hidden): the package's man pages and shell completions, generated from one
//! source each. had(8) and hactl(8) come from the clap definitions the binaries parse; ha.cf(5),
//! haresources(5), authkeys(5) and had.toml(5) from the sections of docs/configuration.md, by
//! the small Markdown-to-roff converter below (headings, paragraphs, lists, tables, code).

use std::path::Path;

use anyhow::{Context, bail};
use clap::CommandFactory;
use clap_complete::Shell;

/// Writes `man/*.{5,8}` and `completions/{bash,zsh,fish}/…` under `out`.
pub fn gen_docs(out: &Path, config_md: &Path, hactl: clap::Command) -> anyhow::Result<()> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let had = ha_control::cli::Args::command();
    write(
        &man.join("had.8"),
        &command_page(had.clone(), "8", HAD_EXTRA)?,
    )?;
    write(
        &man.join("hactl.8"),
        &command_page(hactl.clone(), "8", HACTL_EXTRA)?,
    )?;
    let md = std::fs::read_to_string(config_md)
        .with_context(|| format!("reading {}", config_md.display()))?;
    for page in FILE_PAGES {
        write(
            &man.join(format!("{}.5", page.name)),
            &file_page(&md, page)?,
        )?;
    }
    for (shell, dir, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let d = out.join("completions").join(dir);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        for cmd in [had.clone(), hactl.clone()] {
            let name = cmd.get_name().to_string();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
            write(&d.join(file.replace("{}", &name)), &String::from_utf8(buf)?)?;
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

const HAD_EXTRA: &str = "\
## Exit status
- 0: stopped after releasing every resource group (SIGTERM, SIGINT).
- 6: the configuration is invalid (LSB \"not configured\"); every problem is printed with file, line and fix. The systemd unit does not restart on it.
- other: an operating-system failure (a socket could not be bound, the state directory is not writable).

## Signals
- `SIGTERM`, `SIGINT`: hand every group to the peer, then exit.
- `SIGHUP`: re-read the configuration, as `hactl reload`.

## Files
`/etc/ha.d/ha.cf`, `/etc/ha.d/haresources`, `/etc/ha.d/authkeys`, `/etc/ha.d/had.toml`: the configuration. `/var/lib/heartbeat/`: `hb_uuid` and `hb_generation`. `/run/had/had.sock`: the control socket `hactl` talks to.

## See also
hactl(8), ha.cf(5), haresources(5), authkeys(5), had.toml(5), and /usr/share/doc/had/.
";

const HACTL_EXTRA: &str = "\
## Exit status
- 0: done.
- 1: refused or failed (the reason is printed).
- 3: the daemon is not running.
- 6: the configuration is invalid (`check`).

When called as `cl_status` (a link to hactl), it behaves as Heartbeat's `cl_status`.

## See also
had(8), ha.cf(5), haresources(5), authkeys(5), had.toml(5).
";

/// A man page made of sections of docs/configuration.md.
struct FilePage {
    name: &'static str,
    summary: &'static str,
    /// Level-2 headings of the Markdown taken whole, in this order; the first is the page's
    /// DESCRIPTION, the others keep their own titles.
    sections: &'static [&'static str],
    see_also: &'static str,
}

const FILE_PAGES: &[FilePage] = &[
    FilePage {
        name: "ha.cf",
        summary: "cluster settings of had and Heartbeat: nodes, timers, media, failback, logging",
        sections: &["`ha.cf`", "Common syntax of the Heartbeat files"],
        see_also: "had(8), hactl(8), haresources(5), authkeys(5), had.toml(5)",
    },
    FilePage {
        name: "haresources",
        summary: "resource groups of a had or Heartbeat cluster",
        sections: &["`haresources`", "Common syntax of the Heartbeat files"],
        see_also: "had(8), hactl(8), ha.cf(5), authkeys(5), had.toml(5)",
    },
    FilePage {
        name: "authkeys",
        summary: "keys that sign a had or Heartbeat cluster's packets",
        sections: &["`authkeys`"],
        see_also: "had(8), hactl(8), ha.cf(5), haresources(5)",
    },
    FilePage {
        name: "had.toml",
        summary: "had's own extensions: monitors, metrics, ARP, notify and fence hooks",
        sections: &["`had.toml`"],
        see_also: "had(8), hactl(8), ha.cf(5), haresources(5)",
    },
];

/// had(8) / hactl(8): clap_mangen's page plus the sections clap does not know.
fn command_page(cmd: clap::Command, section: &str, extra: &str) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .manual("System Administration")
        .source(format!("had {}", env!("CARGO_PKG_VERSION")))
        .render(&mut buf)?;
    let mut page = String::from_utf8(buf)?;
    page.push_str(&md_to_roff(extra));
    Ok(page)
}

/// The body of `## heading` (without the heading line), up to the next level-2 heading.
fn md_section<'a>(md: &'a str, heading: &str) -> Option<&'a str> {
    let start_pat = format!("## {heading}\n");
    let start = md.find(&start_pat)? + start_pat.len();
    let rest = &md[start..];
    let end = rest.find("\n## ").map(|i| i + 1).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn file_page(md: &str, page: &FilePage) -> anyhow::Result<String> {
    let mut s = format!(
        ".TH {} 5 \"\" \"had {}\" \"File Formats\"\n.SH NAME\n{} \\- {}\n",
        roff_title(page.name),
        env!("CARGO_PKG_VERSION"),
        escape_text(page.name),
        escape_text(page.summary)
    );
    for (i, h) in page.sections.iter().enumerate() {
        let Some(body) = md_section(md, h) else {
            bail!(
                "docs/configuration.md has no section `## {h}` for {}(5)",
                page.name
            );
        };
        let title = if i == 0 {
            "DESCRIPTION".to_string()
        } else {
            strip_md(h).to_uppercase()
        };
        s.push_str(&format!(".SH {}\n", quote_arg(&title)));
        s.push_str(&md_to_roff(body));
    }
    s.push_str(&format!(
        ".SH FILES\n/etc/ha.d/{}\n.SH \"SEE ALSO\"\n{}\n",
        page.name, page.see_also
    ));
    Ok(s)
}

fn roff_title(name: &str) -> String {
    escape_text(&name.to_uppercase())
}

fn quote_arg(s: &str) -> String {
    format!("\"{}\"", escape_text(s).replace('"', "\\(dq"))
}

/// Markdown text without its inline markup (for titles).
fn strip_md(s: &str) -> String {
    s.replace(['`', '*'], "")
}

/// Escapes plain text for roff: backslashes, and a leading `.` or `'` (a request otherwise).
fn escape_text(s: &str) -> String {
    s.replace('\\', "\\e")
}

fn line_start(s: String) -> String {
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Inline Markdown to roff: `code` in bold (its hyphens as minus signs, as options are),
/// **strong** in bold, [text](url) as its text, `\|` as a bar.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '`'
            && let Some(end) = rest[1..].find('`')
        {
            let code = &rest[1..1 + end];
            out.push_str("\\fB");
            out.push_str(&escape_text(code).replace('-', "\\-"));
            out.push_str("\\fR");
            rest = &rest[end + 2..];
        } else if rest.starts_with("**")
            && let Some(end) = rest[2..].find("**")
        {
            out.push_str("\\fB");
            out.push_str(&inline(&rest[2..2 + end]));
            out.push_str("\\fR");
            rest = &rest[end + 4..];
        } else if c == '['
            && let Some(close) = rest.find("](")
            && let Some(paren) = rest[close..].find(')')
        {
            out.push_str(&inline(&rest[1..close]));
            rest = &rest[close + paren + 1..];
        } else if rest.starts_with("\\|") {
            out.push('|');
            rest = &rest[2..];
        } else {
            if c == '\\' {
                out.push_str("\\e");
            } else {
                out.push(c);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Splits a table row on bars that are not escaped (`\|` stays in the cell).
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|');
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// Block-level Markdown to roff. Tables become tagged paragraphs: the first column is the tag,
/// the others follow, each after its header when there are several.
pub fn md_to_roff(md: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut in_para = false;
    let mut header: Option<Vec<String>> = None;
    let mut lines = md.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            if in_code {
                out.push_str(".fi\n.RE\n");
            } else {
                out.push_str(".PP\n.RS 4\n.nf\n");
            }
            in_code = !in_code;
            in_para = false;
            continue;
        }
        if in_code {
            out.push_str(&line_start(escape_text(line)));
            out.push('\n');
            continue;
        }
        let t = line.trim_end();
        if t.is_empty() {
            in_para = false;
            header = None;
            continue;
        }
        if let Some(h) = t.strip_prefix("### ") {
            out.push_str(&format!(".SS {}\n", quote_arg(&strip_md(h))));
            in_para = false;
        } else if let Some(h) = t.strip_prefix("## ") {
            out.push_str(&format!(".SH {}\n", quote_arg(&strip_md(h).to_uppercase())));
            in_para = false;
        } else if t.starts_with("# ") {
            // The document title: the page has its own.
        } else if t.starts_with('|') {
            let row = cells(t);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
            {
                continue;
            }
            match &header {
                None => header = Some(row),
                Some(h) => {
                    out.push_str(".TP\n");
                    out.push_str(&line_start(inline(row.first().map_or("", String::as_str))));
                    out.push('\n');
                    let many = row.len() > 2;
                    let mut first = true;
                    for (i, cell) in row.iter().enumerate().skip(1) {
                        if cell.is_empty() {
                            continue;
                        }
                        if !first {
                            out.push_str(".br\n");
                        }
                        first = false;
                        let text = match h.get(i) {
                            Some(name) if many && !name.is_empty() => {
                                format!("{}: {}", strip_md(name), inline(cell))
                            }
                            _ => inline(cell),
                        };
                        out.push_str(&line_start(text));
                        out.push('\n');
                    }
                }
            }
            in_para = false;
        } else if let Some(item) = t.strip_prefix("- ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&line_start(inline(item)));
            out.push('\n');
            // Continuation lines of the item are indented.
            while let Some(next) = lines.peek() {
                if next.starts_with("  ") && !next.trim().is_empty() {
                    out.push_str(&line_start(inline(next.trim())));
                    out.push('\n');
                    lines.next();
                } else {
                    break;
                }
            }
            in_para = false;
        } else {
            if !in_para {
                out.push_str(".PP\n");
                in_para = true;
            }
            out.push_str(&line_start(inline(t.trim_start())));
            out.push('\n');
        }
    }
    if in_code {
        out.push_str(".fi\n.RE\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_inline_markup() {
        let md = "## `ha.cf`\nOne directive per line, see [docs](x.md).\n\n\
                  | directive | default | rules |\n|---|---|---|\n\
                  | `auto_failback on\\|off` | `legacy` | **Error** if `-x`. |\n\n\
                  - first\n  continued\n\n```\n.dot first\nback\\slash\n```\n";
        let r = md_to_roff(md);
        assert!(r.contains(".SH \"HA.CF\"\n"), "{r}");
        assert!(
            r.contains(".PP\nOne directive per line, see docs.\n"),
            "{r}"
        );
        assert!(
            r.contains(".TP\n\\fBauto_failback on|off\\fR\ndefault: \\fBlegacy\\fR\n.br\nrules: \\fBError\\fR if \\fB\\-x\\fR.\n"),
            "{r}"
        );
        assert!(r.contains(".IP \\(bu 2\nfirst\ncontinued\n"), "{r}");
        assert!(r.contains(".nf\n\\&.dot first\nback\\eslash\n.fi\n"), "{r}");
    }

    #[test]
    fn sections_are_cut_at_the_next_level_two_heading() {
        let md = "# T\n## A\na\n### A1\nb\n## B\nc\n";
        assert_eq!(md_section(md, "A"), Some("a\n### A1\nb\n"));
        assert_eq!(md_section(md, "B"), Some("c\n"));
        assert_eq!(md_section(md, "C"), None);
    }

    #[test]
    fn every_file_page_finds_its_sections_in_the_real_document() {
        let md = include_str!("../../../docs/configuration.md");
        for p in FILE_PAGES {
            let page = file_page(md, p).unwrap_or_else(|e| panic!("{e}"));
            assert!(page.starts_with(".TH "), "{}", p.name);
            assert!(page.contains(".SH \"DESCRIPTION\"\n"), "{}", p.name);
            // Nothing Markdown leaks through.
            assert!(!page.contains("```"), "{}", p.name);
            assert!(!page.contains("\n|"), "{}:\n{page}", p.name);
        }
    }
}
