//! Text for humans: a column-aligned table, byte counts, percentages.

use std::fmt::Write as _;

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `1536` → `"1.5 KiB"`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}
pub(crate) use Align::{Left, Right};

/// A text table with aligned columns.
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// With a header line.
    pub(crate) fn render(&self, indent: &str) -> String {
        let header: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        self.render_rows(indent, std::iter::once(&header).chain(&self.rows))
    }

    /// Without a header line.
    pub(crate) fn render_bare(&self, indent: &str) -> String {
        self.render_rows(indent, self.rows.iter())
    }

    fn render_rows<'a>(&self, indent: &str, rows: impl Iterator<Item = &'a Vec<String>>) -> String {
        let rows: Vec<&Vec<String>> = rows.collect();
        let mut widths = vec![0; self.columns.len()];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut s = String::new();
        for r in rows {
            let mut line = String::from(indent);
            for (i, cell) in r.iter().enumerate() {
                let w = widths[i];
                let last = i + 1 == r.len();
                match self.columns[i].1 {
                    Right => {
                        let _ = write!(line, "{cell:>w$}");
                    }
                    Left if last => line += cell,
                    Left => {
                        let _ = write!(line, "{cell:<w$}");
                    }
                }
                if !last {
                    line += "  ";
                }
            }
            s += line.trim_end();
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 20), "1.0 MiB");
    }
}
