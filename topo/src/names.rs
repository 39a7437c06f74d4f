//! Checks of the names `topo` turns into paths, namespace names and
//! interface names (issue 13 item 6).
//!
//! A topology name becomes a directory of the state directory
//! (`<state>/topologies/<name>`) and a lock file; `prefix + node` becomes a
//! network namespace (a file in `/run/netns`, at most `NAME_MAX` 255 bytes);
//! `prefix + topology + "-emu"` the emulator's namespace; a link name becomes
//! a file name (`emu-<link>.json`); an interface name must fit `IFNAMSIZ`
//! (15 bytes and the terminating NUL; `topo` adds no prefix to interface
//! names). So every name is checked the same way, when a topology is loaded
//! and on every command-line argument that names one:
//!
//! - only ASCII letters, digits, `-`, `_` and `.`; so never `/`, a space or
//!   a control character;
//! - not empty (a prefix may be), not longer than its limit below;
//! - no `..` anywhere, and no leading `.` or `-` (a hidden file, or an
//!   option to `ip`).
//!
//! The limits keep every namespace name far below `NAME_MAX`: prefix 64 +
//! node 32 = 96 bytes, prefix 64 + topology 48 + `-emu` = 116 bytes. A link
//! name may be 65 bytes, the default `<a>-<b>` of two 32-byte node names.

/// Longest topology name.
pub const MAX_TOPOLOGY: usize = 48;
/// Longest node name.
pub const MAX_NODE: usize = 32;
/// Longest link name (room for the default `<a>-<b>` of two nodes).
pub const MAX_LINK: usize = 2 * MAX_NODE + 1;
/// Longest namespace prefix.
pub const MAX_PREFIX: usize = 64;
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

// NAME_MAX is 255: the longest namespace names topo makes fit.
const _: () = assert!(MAX_PREFIX + MAX_NODE <= 255);
const _: () = assert!(MAX_PREFIX + MAX_TOPOLOGY + "-emu".len() <= 255);

/// A name that `topo` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{}` {reason}", value.escape_debug())]
pub struct NameError {
    /// What the name names (`topology name`, `node name`, `link name`,
    /// `prefix`, `interface name`).
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

/// Checks a topology name (1-48 bytes).
pub fn topology(name: &str) -> Result<(), NameError> {
    check("topology name", name, 1, MAX_TOPOLOGY)
}

/// Checks a node name (1-32 bytes).
pub fn node(name: &str) -> Result<(), NameError> {
    check("node name", name, 1, MAX_NODE)
}

/// Checks a link name (1-48 bytes).
pub fn link(name: &str) -> Result<(), NameError> {
    check("link name", name, 1, MAX_LINK)
}

/// Checks a namespace prefix (0-64 bytes).
pub fn prefix(p: &str) -> Result<(), NameError> {
    check("prefix", p, 0, MAX_PREFIX)
}

/// Checks an interface name (1-15 bytes, and not `lo`).
pub fn ifname(name: &str) -> Result<(), NameError> {
    check("interface name", name, 1, MAX_IFNAME)?;
    if name == "lo" {
        return Err(err(
            "interface name",
            name,
            "is the loopback device of every namespace".into(),
        ));
    }
    Ok(())
}

fn err(what: &'static str, value: &str, reason: String) -> NameError {
    NameError {
        what,
        value: value.to_string(),
        reason,
    }
}

fn check(what: &'static str, s: &str, min: usize, max: usize) -> Result<(), NameError> {
    const ALLOWED: &str = "only ASCII letters, digits, `-`, `_` and `.` are allowed";
    if s.len() < min {
        return Err(err(what, s, "is empty".into()));
    }
    if s.len() > max {
        return Err(err(
            what,
            s,
            format!("is {} bytes long; at most {max} are allowed", s.len()),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(
            what,
            s,
            format!("contains {:?}; {ALLOWED}", c.to_string()),
        ));
    }
    if s.contains("..") {
        return Err(err(what, s, "contains `..`".into()));
    }
    if let Some(c) = s.chars().next().filter(|c| matches!(c, '.' | '-')) {
        return Err(err(what, s, format!("starts with `{c}`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<(), NameError>) -> String {
        match r {
            Ok(()) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_names_pass() {
        for n in [
            "paper",
            "multi-ue",
            "a",
            "t123cli0-x",
            "v1.2_b",
            &"x".repeat(48),
        ] {
            assert_eq!(topology(n), Ok(()), "{n}");
        }
        for n in ["ue1", "gnb-1", &"n".repeat(32)] {
            assert_eq!(node(n), Ok(()), "{n}");
        }
        for n in ["n6a", "ue1-gnb1", "wan1.b"] {
            assert_eq!(link(n), Ok(()), "{n}");
        }
        for p in ["", "t1-", "lab.", &"p".repeat(64)] {
            assert_eq!(prefix(p), Ok(()), "{p}");
        }
        for n in ["eth0", "radio", "n3", "veth-abc.12345"] {
            assert_eq!(ifname(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn paths_and_traversal_are_refused() {
        assert_eq!(
            reason(topology("../..")),
            "topology name `../..` contains \"/\"; only ASCII letters, digits, `-`, `_` and `.` are allowed"
        );
        assert_eq!(
            reason(topology("../../keep")),
            "topology name `../../keep` contains \"/\"; only ASCII letters, digits, `-`, `_` and `.` are allowed"
        );
        assert_eq!(reason(topology("..")), "topology name `..` contains `..`");
        assert_eq!(
            reason(topology("a..b")),
            "topology name `a..b` contains `..`"
        );
        assert_eq!(reason(node(".")), "node name `.` starts with `.`");
        assert_eq!(
            reason(link(".hidden")),
            "link name `.hidden` starts with `.`"
        );
        assert_eq!(reason(prefix("-x")), "prefix `-x` starts with `-`");
        assert!(reason(prefix("a/b")).contains("contains \"/\""));
        assert!(reason(ifname("a/b")).contains("contains \"/\""));
        assert!(reason(node("/etc")).contains("contains \"/\""));
    }

    #[test]
    fn empty_long_and_odd_characters_are_refused() {
        assert_eq!(reason(topology("")), "topology name `` is empty");
        assert_eq!(reason(node("")), "node name `` is empty");
        assert_eq!(reason(link("")), "link name `` is empty");
        assert_eq!(reason(ifname("")), "interface name `` is empty");
        assert_eq!(
            reason(ifname("sixteen-chars-xx")),
            "interface name `sixteen-chars-xx` is 16 bytes long; at most 15 are allowed"
        );
        assert!(reason(topology(&"x".repeat(49))).contains("49 bytes long; at most 48"));
        assert!(reason(node(&"x".repeat(33))).contains("at most 32"));
        assert!(reason(link(&"x".repeat(66))).contains("at most 65"));
        assert!(reason(prefix(&"x".repeat(65))).contains("at most 64"));
        assert!(reason(node("a b")).contains("contains \" \""));
        assert!(reason(ifname("eth0:1")).contains("contains \":\""));
        assert_eq!(
            reason(topology("a\nb")),
            "topology name `a\\nb` contains \"\\n\"; only ASCII letters, digits, `-`, `_` and `.` are allowed"
        );
        assert!(reason(node("ué")).contains("contains \"é\""));
        assert_eq!(
            reason(ifname("lo")),
            "interface name `lo` is the loopback device of every namespace"
        );
    }
}
