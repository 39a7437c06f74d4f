//! Parsing of the quantities a topology file carries: rates, sizes, durations,
//! percentages and IP prefixes. Units follow tc(8).

use std::net::IpAddr;

/// Parses a rate as tc does: `bit` (or a bare number), `kbit`, `mbit`, `gbit`,
/// `tbit`, the binary forms `kibit`.. `tibit`, and byte rates `bps`, `kbps`,
/// `mbps`, `gbps`, `tbps` (bytes per second, as in tc). Returns bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = split_num(&t)
        .ok_or_else(|| format!("`{s}` is not a rate (e.g. \"100mbit\", \"1gbit\", \"10gbit\")"))?;
    let mult: f64 = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "kibit" => 1024.0,
        "mibit" => 1024.0 * 1024.0,
        "gibit" => 1024.0 * 1024.0 * 1024.0,
        "tibit" => 1024.0f64.powi(4),
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        "tbps" => 8e12,
        _ => {
            return Err(format!(
                "unknown rate unit `{unit}` in `{s}` (use bit, kbit, mbit, gbit, tbit, or bps, kbps, mbps, gbps for bytes/s)"
            ))
        }
    };
    let v = num * mult;
    if !(v.is_finite()) || v < 1.0 {
        return Err(format!("rate `{s}` must be at least 1bit"));
    }
    if v > 1e15 {
        return Err(format!("rate `{s}` is too large"));
    }
    Ok(v.round() as u64)
}

/// Parses a size in bytes as tc does: `b` or bare bytes, `k`/`kb` (1024),
/// `m`/`mb`, `g`/`gb`, and `kbit`, `mbit`, `gbit` (bits).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = split_num(&t)
        .ok_or_else(|| format!("`{s}` is not a size (e.g. \"32kb\", \"250000b\", \"auto\")"))?;
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1024.0 / 8.0,
        "mbit" => 1024.0 * 1024.0 / 8.0,
        "gbit" => 1024.0 * 1024.0 * 1024.0 / 8.0,
        _ => {
            return Err(format!(
                "unknown size unit `{unit}` in `{s}` (use b, kb, mb, gb)"
            ))
        }
    };
    let v = num * mult;
    if !v.is_finite() || v < 1.0 || v > u32::MAX as f64 {
        return Err(format!("size `{s}` is out of range (1 byte to 4 GB)"));
    }
    Ok(v.round() as u64)
}

/// Parses a duration (`s`, `ms`, `us`, `usec`, `msec`, `sec`; a bare number
/// means microseconds, as in tc). Returns microseconds.
pub fn parse_time_us(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = split_num(&t)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. \"10ms\", \"500us\", \"1s\")"))?;
    let mult: f64 = match unit {
        "s" | "sec" | "secs" => 1e6,
        "ms" | "msec" | "msecs" => 1e3,
        "" | "us" | "usec" | "usecs" => 1.0,
        _ => {
            return Err(format!(
                "unknown time unit `{unit}` in `{s}` (use s, ms, us)"
            ))
        }
    };
    let v = num * mult;
    if !v.is_finite() || !(0.0..=3600e6).contains(&v) {
        return Err(format!("duration `{s}` is out of range (0 to 1 hour)"));
    }
    Ok(v.round() as u64)
}

/// Parses a loss percentage such as `0.1%` into parts per million.
pub fn parse_percent_ppm(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let Some(n) = t.strip_suffix('%') else {
        return Err(format!("loss `{s}` must be a percentage such as \"0.1%\""));
    };
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage such as \"0.1%\""))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("loss `{s}` must be between 0% and 100%"));
    }
    Ok((v * 10_000.0).round() as u32)
}

fn split_num(t: &str) -> Option<(f64, &str)> {
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    if end == 0 {
        return None;
    }
    let num: f64 = t[..end].parse().ok()?;
    Some((num, t[end..].trim()))
}

/// Formats bits per second the way tc prints rates.
pub fn fmt_rate(bps: u64) -> String {
    if bps >= 1_000_000_000 && bps % 1_000_000 == 0 {
        format!("{}gbit", trim_f(bps as f64 / 1e9))
    } else if bps >= 1_000_000 {
        format!("{}mbit", trim_f(bps as f64 / 1e6))
    } else if bps >= 1_000 {
        format!("{}kbit", trim_f(bps as f64 / 1e3))
    } else {
        format!("{bps}bit")
    }
}

/// Formats microseconds as a short duration.
pub fn fmt_us(us: u64) -> String {
    if us >= 1000 && us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else if us >= 1000 {
        format!("{}ms", trim_f(us as f64 / 1e3))
    } else {
        format!("{us}us")
    }
}

fn trim_f(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// An address with its prefix length, as written on an interface (`10.0.0.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl IfAddr {
    /// Parses `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` needs a prefix length, e.g. \"10.0.0.1/24\""))?;
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 or IPv6 address"))?;
        let prefix: u8 = p
            .trim()
            .parse()
            .map_err(|_| format!("bad prefix length `{p}` in `{s}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!(
                "prefix length /{prefix} in `{s}` is longer than /{max}"
            ));
        }
        Ok(IfAddr { addr, prefix })
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        mask(self.addr, self.prefix)
    }

    /// Whether `ip` lies in this prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.network()
    }
}

impl std::fmt::Display for IfAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Clears the host bits of `ip` beyond `prefix`.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix.min(32) as u32)
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix.min(128) as u32)
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("10Gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("1mbps"), Ok(8_000_000));
        assert_eq!(parse_rate("2.5gbit"), Ok(2_500_000_000));
        assert_eq!(parse_rate("5000"), Ok(5000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("10 furlongs").is_err());
        assert!(parse_rate("0mbit").is_err());
    }

    #[test]
    fn sizes_times_loss() {
        assert_eq!(parse_size("32kb"), Ok(32768));
        assert_eq!(parse_size("1500b"), Ok(1500));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert!(parse_size("big").is_err());
        assert_eq!(parse_time_us("10ms"), Ok(10_000));
        assert_eq!(parse_time_us("1.5s"), Ok(1_500_000));
        assert_eq!(parse_time_us("250us"), Ok(250));
        assert!(parse_time_us("soon").is_err());
        assert_eq!(parse_percent_ppm("0.1%"), Ok(1000));
        assert_eq!(parse_percent_ppm("100%"), Ok(1_000_000));
        assert!(parse_percent_ppm("0.1").is_err());
        assert!(parse_percent_ppm("120%").is_err());
    }

    #[test]
    fn prefixes() {
        let a = IfAddr::parse("10.61.0.1/30").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.network().to_string(), "10.61.0.0");
        assert!(a.contains("10.61.0.2".parse().unwrap_or_else(|_| unreachable!())));
        assert!(IfAddr::parse("10.0.0.1/33").is_err());
        assert!(IfAddr::parse("10.0.0.1").is_err());
        assert!(IfAddr::parse("10.0.0.300/24").is_err());
        assert!(IfAddr::parse("fd00::1/64").is_ok());
        assert_eq!(fmt_rate(1_000_000_000), "1gbit");
        assert_eq!(fmt_rate(200_000_000), "200mbit");
    }
}
