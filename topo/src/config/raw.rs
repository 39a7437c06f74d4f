//! The file format as read: every value keeps its byte span, so that
//! validation can name the line of a wrong field.

use serde::Deserialize;
use toml::Spanned;

/// A value without a position (from the builder or the command line).
pub(super) fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopology {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) prefix: Option<Spanned<String>>,
    #[serde(default, rename = "node")]
    pub(super) nodes: Vec<RawNode>,
    #[serde(default, rename = "link")]
    pub(super) links: Vec<RawLink>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) kind: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) sysctl: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub(super) routes: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) to: Spanned<String>,
    #[serde(default)]
    pub(super) via: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) dev: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    #[serde(default)]
    pub(super) name: Option<Spanned<String>>,
    pub(super) a: Spanned<RawEnd>,
    pub(super) b: Spanned<RawEnd>,
    #[serde(default)]
    pub(super) shape: Option<Spanned<RawShape>>,
    #[serde(default)]
    pub(super) shape_ab: Option<Spanned<RawShape>>,
    #[serde(default)]
    pub(super) shape_ba: Option<Spanned<RawShape>>,
    #[serde(default)]
    pub(super) mtu: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) emulate: Option<bool>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnd {
    pub(super) node: Spanned<String>,
    #[serde(default)]
    pub(super) ifname: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) addrs: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) mac: Option<Spanned<String>>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShape {
    #[serde(default)]
    pub(super) rate: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) burst: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) delay: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) jitter: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) loss: Option<Spanned<String>>,
}
