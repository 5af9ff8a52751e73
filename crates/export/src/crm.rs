//! The [`Cluster`] as a crm shell script (`crm configure load update FILE`), the form most
//! Pacemaker documentation uses; same content as the CIB, notes as `#` comments.

use std::fmt::Write as _;

use crate::id::escape_comment;
use crate::model::{Attrs, Cluster, Primitive, secs};

/// Renders `c` as a `crm configure` script.
pub fn render(c: &Cluster) -> String {
    let mut s = String::new();
    for line in crate::header_lines(c) {
        // crmsh keeps these as XML comments in the CIB, where `--` is not allowed.
        let _ = writeln!(s, "# {}", escape_comment(&one_line(&line)));
    }
    s.push_str(
        "#\n# Load it on one node of the running cluster: crm configure load update THIS_FILE\n\n",
    );
    for n in &c.nodes {
        let _ = writeln!(s, "node {}: {}", n.id, value(&n.name));
    }
    for g in &c.groups {
        s.push('\n');
        for m in &g.promotables {
            primitive(&mut s, &m.primitive);
        }
        for p in &g.primitives {
            primitive(&mut s, p);
        }
        let members: Vec<&str> = g.primitives.iter().map(|p| p.id.as_str()).collect();
        let _ = writeln!(
            s,
            "group {} {} \\\n\tdescription={}",
            g.id,
            members.join(" "),
            value(&g.description)
        );
        for m in &g.promotables {
            let _ = writeln!(
                s,
                "clone {} {} \\\n\tmeta {}",
                m.id,
                m.primitive.id,
                pairs(&m.meta)
            );
            let _ = writeln!(
                s,
                "colocation {} inf: {} {}:Master",
                m.colocation_id, g.id, m.id
            );
            let _ = writeln!(
                s,
                "order {} Mandatory: {}:promote {}:start",
                m.order_id, m.id, g.id
            );
        }
        for l in &g.locations {
            let _ = writeln!(
                s,
                "location {} {} {}: {}",
                l.id,
                g.id,
                l.score,
                value(&l.node)
            );
        }
        for r in &g.link_rules {
            let _ = writeln!(
                s,
                "location {} {} rule -inf: not_defined {a} or {a} number:lte 0",
                r.id,
                g.id,
                a = r.attribute
            );
        }
    }
    for l in &c.links {
        s.push('\n');
        primitive(&mut s, &l.primitive);
        let _ = writeln!(s, "clone {} {}", l.id, l.primitive.id);
    }
    s.push('\n');
    let _ = writeln!(s, "property {}: {}", c.properties.id, pairs(&c.properties));
    let _ = writeln!(
        s,
        "rsc_defaults {}: {}",
        c.rsc_defaults.id,
        pairs(&c.rsc_defaults)
    );
    let _ = writeln!(
        s,
        "op_defaults {}: {}",
        c.op_defaults.id,
        pairs(&c.op_defaults)
    );
    s
}

fn primitive(s: &mut String, p: &Primitive) {
    let _ = write!(s, "primitive {} {}", p.id, p.spec());
    if !p.params.pairs.is_empty() {
        let _ = write!(s, " \\\n\tparams {}", pairs(&p.params));
    }
    if !p.meta.pairs.is_empty() {
        let _ = write!(s, " \\\n\tmeta {}", pairs(&p.meta));
    }
    for o in &p.ops {
        let _ = write!(
            s,
            " \\\n\top {} interval={} timeout={}",
            o.name,
            secs(o.interval),
            secs(o.timeout)
        );
    }
    s.push('\n');
}

fn pairs(a: &Attrs) -> String {
    a.pairs
        .iter()
        .map(|p| format!("{}={}", p.name, value(&p.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as crm's shell-like parser reads it back unchanged: bare when it is plain,
/// else in double quotes with `"` and `\` escaped.
pub fn value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+".contains(c));
    if plain {
        return v.to_string();
    }
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A note line with no line breaks (each is one `#` comment).
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_when_needed() {
        assert_eq!(value("192.168.1.5"), "192.168.1.5");
        assert_eq!(value("/srv/data"), "/srv/data");
        assert_eq!(value("a b"), "\"a b\"");
        assert_eq!(value("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("x\ny"), "\"x y\"");
    }
}
