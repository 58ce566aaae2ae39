//! Keymaps: TOML files of `action = [keys]` per context, shipped in
//! `keymaps/` and overlaid by the user's files in the config directory.
//! Help and the bottom bar are generated from the active keymap.

use std::collections::BTreeMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use thiserror::Error;

pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../keymaps/default.toml")),
    ("vim", include_str!("../../keymaps/vim.toml")),
    ("emacs", include_str!("../../keymaps/emacs.toml")),
];

/// Where a key is looked up, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Dialog,
    Review,
    Tasks,
    Pages,
    OnCall,
    Incidents,
    Silences,
    Table,
    Global,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Table => "table",
            Scope::Review => "review",
            Scope::Tasks => "tasks",
            Scope::Pages => "pages",
            Scope::OnCall => "oncall",
            Scope::Incidents => "incidents",
            Scope::Silences => "silences",
            Scope::Dialog => "dialog",
        }
    }
}

/// Everything a key can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyAction {
    Quit,
    Help,
    Command,
    Filter,
    Back,
    NextView,
    PrevView,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Follow,
    Words,
    Approve,
    Override,
    Reject,
    Escalate,
    Snooze,
    Claim,
    Mark,
    MarkLike,
    Complete,
    Fail,
    Reassign,
    Acknowledge,
    Resolve,
    Expire,
    Silence,
    Confirm,
    Cancel,
}

const ACTIONS: &[(&str, KeyAction, &str)] = &[
    ("quit", KeyAction::Quit, "quit"),
    ("help", KeyAction::Help, "help"),
    ("command", KeyAction::Command, "go to view"),
    ("filter", KeyAction::Filter, "filter"),
    ("back", KeyAction::Back, "back"),
    ("next_view", KeyAction::NextView, "next view"),
    ("prev_view", KeyAction::PrevView, "previous view"),
    ("up", KeyAction::Up, "up"),
    ("down", KeyAction::Down, "down"),
    ("page_up", KeyAction::PageUp, "page up"),
    ("page_down", KeyAction::PageDown, "page down"),
    ("top", KeyAction::Top, "top"),
    ("bottom", KeyAction::Bottom, "bottom"),
    ("open", KeyAction::Open, "open"),
    ("follow", KeyAction::Follow, "follow"),
    ("words", KeyAction::Words, "in words"),
    ("approve", KeyAction::Approve, "approve"),
    ("override", KeyAction::Override, "override"),
    ("reject", KeyAction::Reject, "reject"),
    ("escalate", KeyAction::Escalate, "escalate"),
    ("snooze", KeyAction::Snooze, "snooze"),
    ("claim", KeyAction::Claim, "claim"),
    ("mark", KeyAction::Mark, "mark"),
    ("mark_like", KeyAction::MarkLike, "mark alike"),
    ("complete", KeyAction::Complete, "complete"),
    ("fail", KeyAction::Fail, "fail"),
    ("reassign", KeyAction::Reassign, "reassign"),
    ("acknowledge", KeyAction::Acknowledge, "acknowledge"),
    ("resolve", KeyAction::Resolve, "resolve"),
    ("expire", KeyAction::Expire, "expire"),
    ("silence", KeyAction::Silence, "silence like this"),
    ("confirm", KeyAction::Confirm, "confirm"),
    ("cancel", KeyAction::Cancel, "cancel"),
];

impl KeyAction {
    pub fn label(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a, _)| *a == self)
            .map_or("?", |(_, _, l)| l)
    }

    fn parse(name: &str) -> Option<KeyAction> {
        ACTIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, a, _)| *a)
    }
}

/// A key as written in a keymap file (`q`, `ctrl-c`, `alt-x`, `pagedown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
    pub alt: bool,
}

/// `KeyCode` subset with an order, so keys can sit in maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyCodeOrd {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Backspace,
    Delete,
}

impl Key {
    pub fn parse(text: &str) -> Option<Key> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "enter" => KeyCodeOrd::Enter,
            "esc" => KeyCodeOrd::Esc,
            "tab" => KeyCodeOrd::Tab,
            "backtab" => KeyCodeOrd::BackTab,
            "up" => KeyCodeOrd::Up,
            "down" => KeyCodeOrd::Down,
            "left" => KeyCodeOrd::Left,
            "right" => KeyCodeOrd::Right,
            "pageup" => KeyCodeOrd::PageUp,
            "pagedown" => KeyCodeOrd::PageDown,
            "home" => KeyCodeOrd::Home,
            "end" => KeyCodeOrd::End,
            "backspace" => KeyCodeOrd::Backspace,
            "delete" => KeyCodeOrd::Delete,
            "space" => KeyCodeOrd::Char(' '),
            other => {
                let mut chars = other.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCodeOrd::Char(c)
            }
        };
        Some(Key { code, ctrl, alt })
    }

    pub fn from_event(event: &KeyEvent) -> Option<Key> {
        let code = match event.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(c),
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::Backspace => KeyCodeOrd::Backspace,
            KeyCode::Delete => KeyCodeOrd::Delete,
            _ => return None,
        };
        Some(Key {
            code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
            alt: event.modifiers.contains(KeyModifiers::ALT),
        })
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeOrd::Char(' ') => "space".to_string(),
            KeyCodeOrd::Char(c) => c.to_string(),
            KeyCodeOrd::Enter => "enter".into(),
            KeyCodeOrd::Esc => "esc".into(),
            KeyCodeOrd::Tab => "tab".into(),
            KeyCodeOrd::BackTab => "S-tab".into(),
            KeyCodeOrd::Up => "↑".into(),
            KeyCodeOrd::Down => "↓".into(),
            KeyCodeOrd::Left => "←".into(),
            KeyCodeOrd::Right => "→".into(),
            KeyCodeOrd::PageUp => "pgup".into(),
            KeyCodeOrd::PageDown => "pgdn".into(),
            KeyCodeOrd::Home => "home".into(),
            KeyCodeOrd::End => "end".into(),
            KeyCodeOrd::Backspace => "bksp".into(),
            KeyCodeOrd::Delete => "del".into(),
        };
        match (self.ctrl, self.alt) {
            (true, _) => format!("^{base}"),
            (_, true) => format!("M-{base}"),
            _ => base,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum KeymapError {
    #[error("keymap {file}: {error}")]
    Parse { file: String, error: String },
    #[error("keymap {file}: [{context}] `{key}`: {reason}")]
    Key {
        file: String,
        context: String,
        key: String,
        reason: String,
    },
    #[error("keymap {file}: `{name}` is not a keymap (shipped: default, vim, emacs)")]
    Unknown { file: String, name: String },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    inherits: Option<String>,
    #[serde(default)]
    global: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    table: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    review: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    tasks: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pages: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    oncall: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    incidents: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    silences: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    dialog: BTreeMap<String, Vec<String>>,
}

/// Keys per context, after overlays; conflicts are kept to report.
#[derive(Debug, Clone, Default)]
pub struct Keymap {
    pub name: String,
    /// context → action → (keys, the file that set them)
    bindings: BTreeMap<Scope, BTreeMap<KeyAction, (Vec<Key>, String)>>,
}

/// Two actions on one key in one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub file: String,
    pub context: &'static str,
    pub key: String,
    pub actions: (KeyAction, KeyAction),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keymap {}: [{}] `{}` is bound to both {} and {}",
            self.file,
            self.context,
            self.key,
            self.actions.0.label(),
            self.actions.1.label()
        )
    }
}

impl Keymap {
    /// Loads `name`: the user's file in `user_dir` if there is one (which
    /// may inherit a shipped keymap), else the shipped one.
    // Over 80 lines: read, inherit, overlay, check: a file's whole story in one place.
    pub fn load(name: &str, user_dir: Option<&Path>) -> Result<Keymap, KeymapError> {
        let mut chain: Vec<(String, KeymapFile)> = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(current) = next.take() {
            if chain.len() > 8 {
                return Err(KeymapError::Parse {
                    file: current,
                    error: "`inherits` goes round in a circle".into(),
                });
            }
            let user = user_dir
                .map(|d| d.join(format!("{current}.toml")))
                .filter(|p| p.exists());
            let already_user = chain.iter().any(|(f, _)| {
                f.ends_with(&format!("{current}.toml")) && !f.starts_with("keymaps/")
            });
            let (file, text) = match user {
                Some(path) if !already_user => {
                    let text = std::fs::read_to_string(&path).map_err(|e| KeymapError::Parse {
                        file: path.display().to_string(),
                        error: e.to_string(),
                    })?;
                    (path.display().to_string(), text)
                }
                _ => match SHIPPED.iter().find(|(n, _)| *n == current) {
                    Some((n, text)) => (format!("keymaps/{n}.toml"), text.to_string()),
                    None => {
                        return Err(KeymapError::Unknown {
                            file: chain
                                .last()
                                .map_or_else(|| current.clone(), |(f, _)| f.clone()),
                            name: current,
                        });
                    }
                },
            };
            let parsed: KeymapFile = toml::from_str(&text).map_err(|e| KeymapError::Parse {
                file: file.clone(),
                error: e.to_string(),
            })?;
            next = parsed.inherits.clone();
            // A user file named like a shipped one with no `inherits` still
            // overlays the shipped one of that name.
            if next.is_none()
                && !file.starts_with("keymaps/")
                && SHIPPED.iter().any(|(n, _)| *n == current)
            {
                next = Some(current.clone());
            }
            chain.push((file, parsed));
        }
        let mut keymap = Keymap {
            name: name.to_string(),
            bindings: BTreeMap::new(),
        };
        for (file, parsed) in chain.into_iter().rev() {
            for (context, table) in [
                (Scope::Global, parsed.global),
                (Scope::Table, parsed.table),
                (Scope::Review, parsed.review),
                (Scope::Tasks, parsed.tasks),
                (Scope::Pages, parsed.pages),
                (Scope::OnCall, parsed.oncall),
                (Scope::Incidents, parsed.incidents),
                (Scope::Silences, parsed.silences),
                (Scope::Dialog, parsed.dialog),
            ] {
                for (action_name, keys) in table {
                    let action =
                        KeyAction::parse(&action_name).ok_or_else(|| KeymapError::Key {
                            file: file.clone(),
                            context: context.name().into(),
                            key: action_name.clone(),
                            reason: "no such action".into(),
                        })?;
                    let mut parsed_keys = Vec::new();
                    for k in keys {
                        let key = Key::parse(&k).ok_or_else(|| KeymapError::Key {
                            file: file.clone(),
                            context: context.name().into(),
                            key: k.clone(),
                            reason: "not a key (try `q`, `ctrl-c`, `alt-x`, `enter`, `pagedown`)"
                                .into(),
                        })?;
                        parsed_keys.push(key);
                    }
                    keymap
                        .bindings
                        .entry(context)
                        .or_default()
                        .insert(action, (parsed_keys, file.clone()));
                }
            }
        }
        Ok(keymap)
    }

    /// Two actions on the same key in one context.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::new();
        for (context, actions) in &self.bindings {
            let mut seen: BTreeMap<Key, KeyAction> = BTreeMap::new();
            for (action, (keys, file)) in actions {
                for key in keys {
                    if let Some(other) = seen.insert(*key, *action)
                        && other != *action
                    {
                        out.push(Conflict {
                            file: file.clone(),
                            context: context.name(),
                            key: key.label(),
                            actions: (other, *action),
                        });
                    }
                }
            }
        }
        out
    }

    /// The action for a key, looking in `contexts` in order.
    pub fn action(&self, key: &Key, contexts: &[Scope]) -> Option<KeyAction> {
        for context in contexts {
            if let Some(actions) = self.bindings.get(context) {
                for (action, (keys, _)) in actions {
                    if keys.contains(key) {
                        return Some(*action);
                    }
                }
            }
        }
        None
    }

    /// (keys, action) for a context, for help and the bottom bar.
    pub fn bindings(&self, context: Scope) -> Vec<(String, KeyAction)> {
        self.bindings
            .get(&context)
            .map(|actions| {
                actions
                    .iter()
                    .filter(|(_, (keys, _))| !keys.is_empty())
                    .map(|(action, (keys, _))| {
                        let labels: Vec<String> = keys.iter().map(Key::label).collect();
                        (labels.join("/"), *action)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first key of an action, for hints in the UI.
    pub fn key_for(&self, action: KeyAction) -> String {
        for actions in self.bindings.values() {
            if let Some((keys, _)) = actions.get(&action)
                && let Some(k) = keys.first()
            {
                return k.label();
            }
        }
        "?".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        Key::parse(text).unwrap()
    }

    #[test]
    fn shipped_keymaps_load_without_conflicts() {
        for (name, _) in SHIPPED {
            let k = Keymap::load(name, None).unwrap();
            assert!(k.conflicts().is_empty(), "{name}: {:?}", k.conflicts());
        }
    }

    #[test]
    fn vim_inherits_default_and_adds_keys() {
        let k = Keymap::load("vim", None).unwrap();
        let table = [Scope::Table, Scope::Global];
        assert_eq!(k.action(&key("j"), &table), Some(KeyAction::Down));
        assert_eq!(k.action(&key("down"), &table), Some(KeyAction::Down));
        assert_eq!(
            k.action(&key("q"), &table),
            Some(KeyAction::Quit),
            "from default"
        );
    }

    #[test]
    fn a_user_overlay_replaces_one_action_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "inherits = \"default\"\n[review]\napprove = [\"y\"]\n",
        )
        .unwrap();
        let k = Keymap::load("mine", Some(dir.path())).unwrap();
        assert_eq!(
            k.action(&key("y"), &[Scope::Review]),
            Some(KeyAction::Approve)
        );
        assert_eq!(k.action(&key("a"), &[Scope::Review]), None);
        assert_eq!(
            k.action(&key("x"), &[Scope::Review]),
            Some(KeyAction::Reject)
        );
    }

    #[test]
    fn two_actions_on_one_key_are_reported_with_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clash.toml"),
            "inherits = \"default\"\n[review]\napprove = [\"x\"]\n",
        )
        .unwrap();
        let k = Keymap::load("clash", Some(dir.path())).unwrap();
        let conflicts = k.conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let text = conflicts[0].to_string();
        assert!(text.contains("[review]") && text.contains("`x`"), "{text}");
    }

    #[test]
    fn a_bad_key_or_action_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "[table]\ndown = [\"ctrl-\"]\n").unwrap();
        let err = Keymap::load("bad", Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.toml") && err.contains("ctrl-"), "{err}");
        std::fs::write(dir.path().join("bad2.toml"), "[table]\nfly = [\"u\"]\n").unwrap();
        let err = Keymap::load("bad2", Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad2.toml") && err.contains("fly"), "{err}");
    }
}
