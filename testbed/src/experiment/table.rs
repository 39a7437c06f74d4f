//! The raw files of an experiment: CSV tables written row by row as the
//! runs end (so Ctrl-C keeps what was measured), read back by column name
//! for the report, and the statistics the report gives (mean with its
//! sample standard deviation, min and max; empirical CDFs).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ExpError;

/// A CSV file: a header and rows of cells (no cell holds a comma, a quote
/// or a line break: the writers only put numbers and names in them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Table, ExpError> {
        let text = std::fs::read_to_string(path).map_err(ExpError::io("read", path))?;
        Table::parse(&text).map_err(|e| ExpError::Csv {
            path: path.to_path_buf(),
            msg: e,
        })
    }

    /// Parses CSV text; every row must have the header's width.
    pub fn parse(text: &str) -> Result<Table, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines
            .next()
            .ok_or("empty file")?
            .split(',')
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, l) in lines.enumerate() {
            let r: Vec<String> = l.split(',').map(str::to_string).collect();
            if r.len() != header.len() {
                return Err(format!(
                    "line {}: {} cells, the header has {}",
                    i + 2,
                    r.len(),
                    header.len()
                ));
            }
            rows.push(r);
        }
        Ok(Table { header, rows })
    }

    /// The index of column `name`.
    pub fn col(&self, name: &str) -> Result<usize, String> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column `{name}`"))
    }

    /// The rows whose column `key` is `value`.
    pub fn select(&self, key: &str, value: &str) -> Result<Table, String> {
        let k = self.col(key)?;
        Ok(Table {
            header: self.header.clone(),
            rows: self
                .rows
                .iter()
                .filter(|r| r[k] == value)
                .cloned()
                .collect(),
        })
    }

    /// The numbers of column `name` (empty cells are left out).
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>, String> {
        let c = self.col(name)?;
        self.rows
            .iter()
            .filter(|r| !r[c].is_empty())
            .map(|r| {
                r[c].parse::<f64>()
                    .map_err(|_| format!("column `{name}`: `{}` is not a number", r[c]))
            })
            .collect()
    }

    /// The distinct values of column `name`, in order of appearance.
    pub fn distinct(&self, name: &str) -> Result<Vec<String>, String> {
        let c = self.col(name)?;
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r[c]) {
                out.push(r[c].clone());
            }
        }
        Ok(out)
    }

    /// How many rows have `value` in column `name`.
    pub fn count(&self, name: &str, value: &str) -> Result<usize, String> {
        let c = self.col(name)?;
        Ok(self.rows.iter().filter(|r| r[c] == value).count())
    }
}

/// Appends rows to a CSV file, writing the header when it creates it.
#[derive(Debug)]
pub struct CsvOut {
    path: PathBuf,
    header: Vec<String>,
}

impl CsvOut {
    /// `dir/name` with these columns.
    pub fn new<S: ToString>(dir: &Path, name: &str, header: &[S]) -> CsvOut {
        CsvOut {
            path: dir.join(name),
            header: header.iter().map(ToString::to_string).collect(),
        }
    }

    /// Appends `rows` (each the header's width) and flushes.
    pub fn append(&self, rows: &[Vec<String>]) -> Result<(), ExpError> {
        let new = !self.path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(ExpError::io("open", &self.path))?;
        let mut text = String::new();
        if new {
            text.push_str(&self.header.join(","));
            text.push('\n');
        }
        for r in rows {
            debug_assert_eq!(r.len(), self.header.len(), "{r:?}");
            let cells: Vec<String> = r.iter().map(|c| c.replace([',', '\n'], ";")).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        f.write_all(text.as_bytes())
            .map_err(ExpError::io("write", &self.path))
    }
}

/// An optional number as a CSV cell (empty when absent).
pub fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

/// Mean with spread over a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Of `v`; `None` when empty.
    pub fn of(v: &[f64]) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Spread {
            n,
            mean,
            sd: var.sqrt(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    /// `mean ± sd [min, max]` with `prec` decimals.
    pub fn show(&self, prec: usize) -> String {
        format!(
            "{:.p$} ± {:.p$} [{:.p$}, {:.p$}]",
            self.mean,
            self.sd,
            self.min,
            self.max,
            p = prec
        )
    }
}

/// `show` of the spread of `v`, or `-` when empty.
pub fn spread(v: &[f64], prec: usize) -> String {
    Spread::of(v).map_or("-".into(), |s| s.show(prec))
}

/// The value at quantile `q` (0..=1) by nearest rank; `None` when empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[i - 1])
}

/// The empirical CDF of `v`: (value, fraction at or below it), sorted.
pub fn cdf(v: &[f64]) -> Vec<(f64, f64)> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    s.into_iter()
        .enumerate()
        .map(|(i, x)| (x, (i + 1) as f64 / n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_quantiles() {
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0]).expect("values");
        assert_eq!((s.n, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
        assert!((s.sd - 1.290_994).abs() < 1e-6, "{}", s.sd);
        assert_eq!(s.show(1), "2.5 ± 1.3 [1.0, 4.0]");
        assert_eq!(Spread::of(&[5.0]).map(|s| s.sd), Some(0.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 1.0), Some(3.0));
        assert_eq!(cdf(&[2.0, 1.0]), vec![(1.0, 0.5), (2.0, 1.0)]);
    }

    #[test]
    fn tables_round_trip_and_refuse_ragged_rows() {
        let dir = std::env::temp_dir().join(format!("exp-table-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = CsvOut::new(&dir, "t.csv", &["k", "v"]);
        out.append(&[vec!["a".into(), "1".into()]]).expect("append");
        out.append(&[
            vec!["b".into(), String::new()],
            vec!["a".into(), "3".into()],
        ])
        .expect("append");
        let t = Table::read(&dir.join("t.csv")).expect("read");
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.distinct("k"), Ok(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(
            t.select("k", "a").and_then(|t| t.numbers("v")),
            Ok(vec![1.0, 3.0])
        );
        assert_eq!(t.count("k", "b"), Ok(1));
        assert!(t.numbers("nope").is_err());
        assert!(Table::parse("a,b\n1\n").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
