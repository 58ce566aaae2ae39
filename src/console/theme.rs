//! Themes: TOML files with a `[palette]` and `inherits`, shipped in
//! `themes/` and overlaid by the user's files in the config directory.
//! Missing keys fall back along `inherits`; `NO_COLOR` turns colour off.

use std::collections::BTreeMap;
use std::path::Path;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use thiserror::Error;

pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
];

const KEYS: &[&str] = &[
    "bg",
    "fg",
    "muted",
    "accent",
    "title",
    "ok",
    "warn",
    "bad",
    "selection_bg",
    "selection_fg",
    "border",
];

#[derive(Debug, Error, PartialEq)]
pub enum ThemeError {
    #[error("theme {file}: {error}")]
    Parse { file: String, error: String },
    #[error("theme {file}: palette key `{key}`: {reason}")]
    Key {
        file: String,
        key: String,
        reason: String,
    },
    #[error("no theme `{0}` (shipped: default, light, high-contrast, colorblind)")]
    Unknown(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    inherits: Option<String>,
    #[serde(default)]
    palette: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub bg: Color,
    pub fg: Color,
    pub muted: Color,
    pub accent: Color,
    pub title: Color,
    pub ok: Color,
    pub warn: Color,
    pub bad: Color,
    pub selection_bg: Color,
    pub selection_fg: Color,
    pub border: Color,
    pub no_color: bool,
}

fn parse_color(text: &str) -> Option<Color> {
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    Some(match text {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark_gray" | "dark_grey" => Color::DarkGray,
        "light_red" => Color::LightRed,
        "light_green" => Color::LightGreen,
        "light_yellow" => Color::LightYellow,
        "light_blue" => Color::LightBlue,
        "light_magenta" => Color::LightMagenta,
        "light_cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

impl Theme {
    /// Loads `name`, the user's file first, following `inherits`.
    // Over 80 lines: read, inherit, overlay, check: a file's whole story in one place.
    pub fn load(name: &str, user_dir: Option<&Path>, no_color: bool) -> Result<Theme, ThemeError> {
        let mut files: Vec<(String, ThemeFile)> = Vec::new();
        let mut next = Some(name.to_string());
        let mut used_user: Vec<String> = Vec::new();
        while let Some(current) = next.take() {
            if files.len() > 8 {
                return Err(ThemeError::Parse {
                    file: current,
                    error: "`inherits` goes round in a circle".into(),
                });
            }
            let user = user_dir
                .map(|d| d.join(format!("{current}.toml")))
                .filter(|p| p.exists() && !used_user.contains(&current));
            let (file, text) = if let Some(path) = user {
                used_user.push(current.clone());
                let text = std::fs::read_to_string(&path).map_err(|e| ThemeError::Parse {
                    file: path.display().to_string(),
                    error: e.to_string(),
                })?;
                (path.display().to_string(), text)
            } else if let Some((n, t)) = SHIPPED.iter().find(|(n, _)| *n == current) {
                (format!("themes/{n}.toml"), t.to_string())
            } else {
                return Err(ThemeError::Unknown(current));
            };
            let parsed: ThemeFile = toml::from_str(&text).map_err(|e| ThemeError::Parse {
                file: file.clone(),
                error: e.to_string(),
            })?;
            for (key, value) in &parsed.palette {
                if !KEYS.contains(&key.as_str()) {
                    return Err(ThemeError::Key {
                        file: file.clone(),
                        key: key.clone(),
                        reason: format!("unknown key (known: {})", KEYS.join(", ")),
                    });
                }
                if parse_color(value).is_none() {
                    return Err(ThemeError::Key {
                        file: file.clone(),
                        key: key.clone(),
                        reason: format!(
                            "`{value}` is not a colour (a name like `red` or `#rrggbb`)"
                        ),
                    });
                }
            }
            let from_user = !file.starts_with("themes/");
            next = parsed.inherits.clone().or_else(|| {
                // A short user file falls back to the shipped theme of its
                // name, or to the default.
                if from_user {
                    Some(if SHIPPED.iter().any(|(n, _)| *n == current) {
                        current.clone()
                    } else {
                        "default".into()
                    })
                } else if current != "default" {
                    Some("default".into())
                } else {
                    None
                }
            });
            files.push((file, parsed));
        }
        let mut palette: BTreeMap<String, String> = BTreeMap::new();
        for (_, f) in files.iter().rev() {
            for (k, v) in &f.palette {
                palette.insert(k.clone(), v.clone());
            }
        }
        let get = |k: &str| {
            palette
                .get(k)
                .and_then(|v| parse_color(v))
                .unwrap_or(Color::Reset)
        };
        Ok(Theme {
            name: name.to_string(),
            bg: get("bg"),
            fg: get("fg"),
            muted: get("muted"),
            accent: get("accent"),
            title: get("title"),
            ok: get("ok"),
            warn: get("warn"),
            bad: get("bad"),
            selection_bg: get("selection_bg"),
            selection_fg: get("selection_fg"),
            border: get("border"),
            no_color,
        })
    }

    /// The shipped default; never fails (it is compiled in and tested).
    pub fn fallback(no_color: bool) -> Theme {
        Theme::load("default", None, no_color).unwrap_or(Theme {
            name: "default".into(),
            bg: Color::Reset,
            fg: Color::Reset,
            muted: Color::Reset,
            accent: Color::Reset,
            title: Color::Reset,
            ok: Color::Reset,
            warn: Color::Reset,
            bad: Color::Reset,
            selection_bg: Color::Reset,
            selection_fg: Color::Reset,
            border: Color::Reset,
            no_color,
        })
    }

    fn color(&self, c: Color) -> Color {
        if self.no_color { Color::Reset } else { c }
    }

    pub fn base(&self) -> Style {
        Style::default()
            .fg(self.color(self.fg))
            .bg(self.color(self.bg))
    }
    pub fn muted(&self) -> Style {
        let s = Style::default().fg(self.color(self.muted));
        if self.no_color {
            s.add_modifier(Modifier::DIM)
        } else {
            s
        }
    }
    pub fn accent(&self) -> Style {
        Style::default()
            .fg(self.color(self.accent))
            .add_modifier(Modifier::BOLD)
    }
    pub fn title(&self) -> Style {
        Style::default()
            .fg(self.color(self.title))
            .add_modifier(Modifier::BOLD)
    }
    pub fn ok(&self) -> Style {
        Style::default().fg(self.color(self.ok))
    }
    pub fn warn(&self) -> Style {
        let s = Style::default().fg(self.color(self.warn));
        if self.no_color {
            s.add_modifier(Modifier::BOLD)
        } else {
            s
        }
    }
    pub fn bad(&self) -> Style {
        let s = Style::default().fg(self.color(self.bad));
        if self.no_color {
            s.add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            s
        }
    }
    pub fn selection(&self) -> Style {
        let s = Style::default()
            .fg(self.color(self.selection_fg))
            .bg(self.color(self.selection_bg));
        if self.no_color {
            s.add_modifier(Modifier::REVERSED)
        } else {
            s.add_modifier(Modifier::BOLD)
        }
    }
    pub fn border(&self) -> Style {
        Style::default().fg(self.color(self.border))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_themes_load() {
        for (name, _) in SHIPPED {
            Theme::load(name, None, false).unwrap();
        }
    }

    #[test]
    fn a_three_line_user_file_overlays_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "inherits = \"light\"\n[palette]\naccent = \"#ff00ff\"\n",
        )
        .unwrap();
        let t = Theme::load("mine", Some(dir.path()), false).unwrap();
        assert_eq!(t.accent, Color::Rgb(255, 0, 255));
        let light = Theme::load("light", None, false).unwrap();
        assert_eq!(t.fg, light.fg, "missing keys come from what it inherits");
        let default = Theme::load("default", None, false).unwrap();
        assert_eq!(light.bg, default.bg, "light falls back to default for bg");
    }

    #[test]
    fn a_bad_colour_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oops.toml"),
            "[palette]\nbad = \"#12345\"\n",
        )
        .unwrap();
        let err = Theme::load("oops", Some(dir.path()), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("oops.toml") && err.contains("`bad`"), "{err}");
    }

    #[test]
    fn no_color_turns_colours_off() {
        let t = Theme::load("default", None, true).unwrap();
        assert_eq!(t.ok().fg, Some(Color::Reset));
    }
}
