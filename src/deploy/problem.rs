//! What is wrong with a deployment directory, as `FILE:LINE: problem`.

use std::fmt;

/// One thing wrong, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, p) in self.0.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One file's text, to point into.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// The line holding byte `offset`.
    pub fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// A problem at byte `offset` (a TOML span's start).
    pub fn at(&self, offset: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: self.name.to_string(),
            line: self.line_at(offset),
            message: message.into(),
        }
    }

    /// A problem on a line found by `find_line`.
    pub fn on(&self, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: self.name.to_string(),
            line,
            message: message.into(),
        }
    }

    /// A TOML error, at the span it names.
    pub fn toml(&self, error: &toml::de::Error) -> Problem {
        let line = error.span().map_or(0, |s| self.line_at(s.start));
        let message = error.message().trim().to_string();
        // A value of the wrong type: the key it is under, from its line.
        let key = line
            .checked_sub(1)
            .and_then(|i| self.text.lines().nth(i))
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    && !message.contains(&format!("`{k}`"))
            });
        Problem {
            file: self.name.to_string(),
            line,
            message: match key {
                Some(key) => format!("`{key}`: {message}"),
                None => message,
            },
        }
    }

    /// The line of the table or array entry for `item` (a header naming it,
    /// or `id = "item"`), then the first line from there that mentions
    /// `needle` (quoted) if one is given; 0 when nothing matches.
    pub fn find_line(&self, item: &str, needle: Option<&str>) -> usize {
        let quoted_item = format!("\"{item}\"");
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines.iter().position(|l| {
            let t = l.trim_start();
            (t.starts_with('[')
                && (t.contains(&quoted_item)
                    || t.contains(&format!(".{item}]"))
                    || t.trim_end() == format!("[{item}]")))
                || (t.starts_with("id") && t.contains(&quoted_item))
        });
        let Some(start) = start else {
            return needle.map_or(0, |n| self.first_mention(0, &lines, n));
        };
        match needle {
            None => start + 1,
            Some(n) => match self.first_mention(start, &lines, n) {
                0 => start + 1,
                found => found,
            },
        }
    }

    /// The line of `key = ...` in table `[table]`, else the table's line.
    pub fn find_key(&self, table: &str, key: &str) -> usize {
        let start = self.find_line(table, None);
        self.text
            .lines()
            .enumerate()
            .skip(start)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map_or(start, |(i, _)| i + 1)
    }

    fn first_mention(&self, from: usize, lines: &[&str], needle: &str) -> usize {
        let quoted = format!("\"{needle}\"");
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| l.contains(&quoted))
            .map_or(0, |(i, _)| i + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_by_item_and_needle() {
        let text = "# c\n[signal.\"a\"]\noptions = [\"x\"]\n\n[signal.\"b\"]\noptions = [\"y\"]\n";
        let src = Source {
            name: "p.toml",
            text,
        };
        assert_eq!(src.find_line("b", Some("y")), 6);
        assert_eq!(src.find_line("a", None), 2);
        assert_eq!(src.find_line("zzz", Some("x")), 3);
        assert_eq!(src.line_at(text.find("[signal.\"b\"]").unwrap()), 5);
        let server = Source {
            name: "s.toml",
            text: "[intake]\nretry_base = 1\n\n[execution]\n# c\nretry_base = \"soon\"\n",
        };
        assert_eq!(server.find_key("execution", "retry_base"), 6);
    }
}
