//! Which rows each table shows (filtered, in order), and the selection.

use super::{App, Focus, TableState, View};

/// The rows a table shows, as indices into what the app holds: all of
/// them in order (no filter: nothing is built, however long the table), or
/// those its filter matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    All(usize),
    /// All of them, the last first.
    Reversed(usize),
    Only(Vec<usize>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::All(n) | Rows::Reversed(n) => *n,
            Rows::Only(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index shown at position `pos`.
    pub fn get(&self, pos: usize) -> Option<usize> {
        match self {
            Rows::All(n) => (pos < *n).then_some(pos),
            Rows::Reversed(n) => (pos < *n).then(|| n - 1 - pos),
            Rows::Only(v) => v.get(pos).copied(),
        }
    }

    /// The position showing index `i`.
    pub fn position(&self, i: usize) -> Option<usize> {
        match self {
            Rows::All(n) => (i < *n).then_some(i),
            Rows::Reversed(n) => (i < *n).then(|| n - 1 - i),
            Rows::Only(v) => v.iter().position(|&x| x == i),
        }
    }

    /// The indices from position `from`, at most `n` of them.
    pub fn window(&self, from: usize, n: usize) -> Vec<usize> {
        match self {
            Rows::All(len) => (from.min(*len)..(from.saturating_add(n)).min(*len)).collect(),
            Rows::Reversed(len) => (from.min(*len)..(from.saturating_add(n)).min(*len))
                .map(|p| len - 1 - p)
                .collect(),
            Rows::Only(v) => v.iter().skip(from).take(n).copied().collect(),
        }
    }
}

impl App {
    /// The rows of a table after its filter.
    pub fn rows(&self, view: View) -> Rows {
        let filter = self
            .filters
            .get(&view)
            .map(|f| f.to_lowercase())
            .unwrap_or_default();
        let matches = |fields: &[&str]| {
            filter.is_empty() || fields.iter().any(|f| f.to_lowercase().contains(&filter))
        };
        if filter.is_empty() {
            let n = match view {
                View::Signals => self.signals.len(),
                View::Flows => self.flow_rows.len(),
                View::Review => self.review_order.len(),
                View::Audit => self.audit.len(),
                View::Changes => self.changes.len(),
                View::Tasks => self.status.as_ref().map_or(0, |s| s.tasks.len()),
                View::Pages => self.status.as_ref().map_or(0, |s| s.pages.len()),
                View::OnCall => self.status.as_ref().map_or(0, |s| s.rota.len()),
                View::Incidents => self.status.as_ref().map_or(0, |s| s.incidents.len()),
                View::Silences => self.status.as_ref().map_or(0, |s| s.silences.len()),
                View::Health => self
                    .status
                    .as_ref()
                    .map_or(0, |s| s.services.len() + s.teams.len() + s.breakers.len()),
                View::Overview => 0,
            };
            // Flows are listed newest first.
            return match view {
                View::Flows => Rows::Reversed(n),
                _ => Rows::All(n),
            };
        }
        Rows::Only(self.matching(view, &matches))
    }

    /// The rows of a table kept apart (signals, flows, review, audit,
    /// changes) whose fields `matches`.
    fn matching(&self, view: View, matches: &dyn Fn(&[&str]) -> bool) -> Vec<usize> {
        match view {
            View::Signals => (0..self.signals.len())
                .filter(|&i| {
                    let s = &self.signals[i];
                    matches(&[&s.id, &s.kind, &s.subject, &s.summary, &s.source])
                })
                .collect(),
            View::Flows => (0..self.flow_rows.len())
                .rev()
                .filter(|&i| {
                    let f = &self.flow_rows[i];
                    matches(&[
                        &f.id,
                        &f.signal_type,
                        &f.subject,
                        &f.option,
                        f.state.as_str(),
                        &f.owner,
                    ])
                })
                .collect(),
            View::Review => (0..self.review_order.len())
                .filter(|&i| {
                    let Some(it) = self.review_at(i) else {
                        return false;
                    };
                    matches(&[
                        &it.id,
                        &it.decision.signal_type,
                        &it.decision.subject,
                        &it.decision.proposal,
                    ])
                })
                .collect(),
            View::Audit => (0..self.audit.len())
                .filter(|&i| {
                    let a = &self.audit[i];
                    matches(&[
                        &a.id,
                        &a.kind,
                        &a.subject,
                        &a.mode,
                        &a.actor,
                        &a.outcome,
                        &a.proposal,
                    ])
                })
                .collect(),
            View::Changes => (0..self.changes.len())
                .filter(|&i| {
                    let c = &self.changes[i];
                    matches(&[&c.id, &c.kind, &c.subject, &c.live, &c.shadow, &c.person])
                })
                .collect(),
            _ => self.matching_in_status(view, matches),
        }
    }

    /// The rows of a table the status carries (tasks, pages, on call,
    /// health) whose fields `matches`.
    fn matching_in_status(&self, view: View, matches: &dyn Fn(&[&str]) -> bool) -> Vec<usize> {
        match view {
            View::Tasks => self
                .status
                .as_ref()
                .map(|s| {
                    (0..s.tasks.len())
                        .filter(|&i| {
                            let t = &s.tasks[i];
                            let agent = t.agent.as_deref().unwrap_or("");
                            matches(&[
                                &t.id,
                                &t.template,
                                &t.subject,
                                &t.team,
                                agent,
                                &t.signal_type,
                            ])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            View::Pages => self
                .status
                .as_ref()
                .map(|s| {
                    (0..s.pages.len())
                        .filter(|&i| {
                            let p = &s.pages[i];
                            let by = p.acknowledged.as_ref().map_or("", |(who, _)| who.as_str());
                            matches(&[&p.id, &p.title, &p.policy, &p.subject, p.state.as_str(), by])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            View::Incidents => self
                .status
                .as_ref()
                .map(|s| {
                    (0..s.incidents.len())
                        .filter(|&i| {
                            let r = &s.incidents[i];
                            matches(&[&r.id, &r.kind, &r.group, r.state.as_str()])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            View::Silences => self
                .status
                .as_ref()
                .map(|s| {
                    (0..s.silences.len())
                        .filter(|&i| {
                            let x = &s.silences[i];
                            matches(&[&x.id, &x.text(), &x.created_by, &x.comment])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            View::OnCall => self
                .status
                .as_ref()
                .map(|s| {
                    (0..s.rota.len())
                        .filter(|&i| {
                            let r = &s.rota[i].now;
                            let who = r.person.as_deref().unwrap_or("gap");
                            matches(&[&r.schedule, &r.team, who])
                        })
                        .collect()
                })
                .unwrap_or_default(),
            View::Health => self
                .status
                .as_ref()
                .map(|s| (0..s.services.len() + s.teams.len() + s.breakers.len()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    pub(super) fn table(&mut self) -> &mut TableState {
        self.tables.entry(self.view).or_default()
    }

    /// Moves the selection by `delta` rows; how many rows the view has.
    pub(super) fn move_selection(&mut self, delta: isize) -> usize {
        let n = self.rows(self.view).len();
        let page = self.page.max(1);
        let t = self.table();
        if n == 0 {
            *t = TableState::default();
            return 0;
        }
        let next = (t.selected as isize + delta).clamp(0, n as isize - 1) as usize;
        t.selected = next;
        if next < t.offset {
            t.offset = next;
        } else if next >= t.offset + page {
            t.offset = next + 1 - page;
        }
        if self.view == View::Signals {
            self.follow = next == 0;
        }
        n
    }

    pub(super) fn go(&mut self, view: View) {
        if view != self.view {
            self.history.push(self.view);
            self.view = view;
        }
        self.focus = Focus::Normal;
    }
}
