//! The [`Cluster`] as a CIB (`cib.xml`): what `cibadmin --replace --xml-file` loads and
//! `crm_verify --xml-file` checks. Every value is escaped; the notes lead as a comment.

use std::fmt::Write as _;

use crate::id::{escape_attr, escape_comment};
use crate::model::{Attrs, Cluster, Operation, Primitive, secs};

/// The CIB schema the file claims: Pacemaker 2.0 and later read it (and upgrade it).
pub const SCHEMA: &str = "pacemaker-3.0";

/// Renders `c` as a complete CIB document.
pub fn render(c: &Cluster) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!--\n");
    for line in crate::header_lines(c) {
        let _ = writeln!(s, "  {}", escape_comment(&line));
    }
    s.push_str("-->\n");
    let _ = writeln!(
        s,
        "<cib validate-with=\"{SCHEMA}\" admin_epoch=\"0\" epoch=\"1\" num_updates=\"0\">"
    );
    s.push_str("  <configuration>\n    <crm_config>\n");
    nvset(&mut s, 6, "cluster_property_set", &c.properties);
    s.push_str("    </crm_config>\n    <nodes>\n");
    for n in &c.nodes {
        let _ = writeln!(
            s,
            "      <node id=\"{}\" uname=\"{}\"/>",
            n.id,
            escape_attr(&n.name)
        );
    }
    s.push_str("    </nodes>\n    <resources>\n");
    for g in &c.groups {
        let _ = writeln!(
            s,
            "      <group id=\"{}\" description=\"{}\">",
            escape_attr(&g.id),
            escape_attr(&g.description)
        );
        for p in &g.primitives {
            primitive(&mut s, 8, p);
        }
        s.push_str("      </group>\n");
        for m in &g.promotables {
            let _ = writeln!(s, "      <clone id=\"{}\">", escape_attr(&m.id));
            nvset(&mut s, 8, "meta_attributes", &m.meta);
            primitive(&mut s, 8, &m.primitive);
            s.push_str("      </clone>\n");
        }
    }
    for l in &c.links {
        let _ = writeln!(s, "      <clone id=\"{}\">", escape_attr(&l.id));
        primitive(&mut s, 8, &l.primitive);
        s.push_str("      </clone>\n");
    }
    s.push_str("    </resources>\n    <constraints>\n");
    for g in &c.groups {
        for l in &g.locations {
            let _ = writeln!(
                s,
                "      <rsc_location id=\"{}\" rsc=\"{}\" node=\"{}\" score=\"{}\"/>",
                escape_attr(&l.id),
                escape_attr(&g.id),
                escape_attr(&l.node),
                l.score
            );
        }
        for r in &g.link_rules {
            let _ = writeln!(
                s,
                "      <rsc_location id=\"{}\" rsc=\"{}\">\n        <rule id=\"{}\" score=\"-INFINITY\" boolean-op=\"or\">\n          <expression id=\"{}\" attribute=\"{attr}\" operation=\"not_defined\"/>\n          <expression id=\"{}\" attribute=\"{attr}\" operation=\"lte\" value=\"0\" type=\"number\"/>\n        </rule>\n      </rsc_location>",
                escape_attr(&r.id),
                escape_attr(&g.id),
                escape_attr(&r.rule_id),
                escape_attr(&r.expr_ids[0]),
                escape_attr(&r.expr_ids[1]),
                attr = escape_attr(&r.attribute),
            );
        }
        for m in &g.promotables {
            let _ = writeln!(
                s,
                "      <rsc_colocation id=\"{}\" score=\"INFINITY\" rsc=\"{}\" with-rsc=\"{}\" with-rsc-role=\"Master\"/>",
                escape_attr(&m.colocation_id),
                escape_attr(&g.id),
                escape_attr(&m.id)
            );
            let _ = writeln!(
                s,
                "      <rsc_order id=\"{}\" kind=\"Mandatory\" first=\"{}\" first-action=\"promote\" then=\"{}\" then-action=\"start\"/>",
                escape_attr(&m.order_id),
                escape_attr(&m.id),
                escape_attr(&g.id)
            );
        }
    }
    s.push_str("    </constraints>\n    <rsc_defaults>\n");
    nvset(&mut s, 6, "meta_attributes", &c.rsc_defaults);
    s.push_str("    </rsc_defaults>\n    <op_defaults>\n");
    nvset(&mut s, 6, "meta_attributes", &c.op_defaults);
    s.push_str("    </op_defaults>\n  </configuration>\n  <status/>\n</cib>\n");
    s
}

fn nvset(s: &mut String, indent: usize, tag: &str, a: &Attrs) {
    if a.pairs.is_empty() {
        return;
    }
    let pad = " ".repeat(indent);
    let _ = writeln!(s, "{pad}<{tag} id=\"{}\">", escape_attr(&a.id));
    for p in &a.pairs {
        let _ = writeln!(
            s,
            "{pad}  <nvpair id=\"{}\" name=\"{}\" value=\"{}\"/>",
            escape_attr(&p.id),
            escape_attr(&p.name),
            escape_attr(&p.value)
        );
    }
    let _ = writeln!(s, "{pad}</{tag}>");
}

fn primitive(s: &mut String, indent: usize, p: &Primitive) {
    let pad = " ".repeat(indent);
    let provider = p
        .provider
        .as_ref()
        .map(|v| format!(" provider=\"{}\"", escape_attr(v)))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{pad}<primitive id=\"{}\" class=\"{}\"{provider} type=\"{}\">",
        escape_attr(&p.id),
        p.class,
        escape_attr(&p.agent)
    );
    nvset(s, indent + 2, "instance_attributes", &p.params);
    nvset(s, indent + 2, "meta_attributes", &p.meta);
    if !p.ops.is_empty() {
        let _ = writeln!(s, "{pad}  <operations>");
        for o in &p.ops {
            op(s, indent + 4, o);
        }
        let _ = writeln!(s, "{pad}  </operations>");
    }
    let _ = writeln!(s, "{pad}</primitive>");
}

fn op(s: &mut String, indent: usize, o: &Operation) {
    let _ = writeln!(
        s,
        "{}<op id=\"{}\" name=\"{}\" interval=\"{}\" timeout=\"{}\"/>",
        " ".repeat(indent),
        escape_attr(&o.id),
        o.name,
        secs(o.interval),
        secs(o.timeout)
    );
}
