//! Pages of what the engine holds (open review items, tasks), so that no
//! answer grows with the queue: items in the order of their ids, a page
//! after a cursor (the last id of the page before), at most `limit` long.
//! Ids are ordered as numbers within one prefix (`R99` before `R100`), so
//! the order is stable while items come and go: a client paging through
//! sees every item that stayed open, once.

use std::cmp::Ordering;

/// Items a page holds unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 200;
/// Most items one page may hold.
pub const MAX_LIMIT: usize = 1000;

/// Which page: the items after `after`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub after: Option<String>,
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One page, and the cursor of the next if there are more.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Ids in their order: shorter first, then as text (`R99` < `R100`).
pub fn id_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Page {
    /// Every item, in one page (the embedded console's own view).
    pub fn everything() -> Page {
        Page {
            after: None,
            limit: usize::MAX,
        }
    }

    /// The page of `items` (each with its id), made by `make` for the ones
    /// on it only. Only the page is sorted: the `limit` first of the rest
    /// are selected in linear time.
    pub fn of<K: AsRef<str>, I, T>(
        &self,
        items: impl Iterator<Item = (K, I)>,
        make: impl Fn(I) -> T,
    ) -> Paged<T> {
        let order = |a: &(K, I), b: &(K, I)| id_order(a.0.as_ref(), b.0.as_ref());
        let mut after: Vec<(K, I)> = items
            .filter(|(id, _)| {
                self.after
                    .as_deref()
                    .is_none_or(|cursor| id_order(id.as_ref(), cursor) == Ordering::Greater)
            })
            .collect();
        let more = after.len() > self.limit;
        if more && self.limit > 0 {
            after.select_nth_unstable_by(self.limit - 1, order);
        }
        after.truncate(self.limit);
        after.sort_by(order);
        let next = more
            .then(|| after.last().map(|(id, _)| id.as_ref().to_string()))
            .flatten();
        Paged {
            items: after.into_iter().map(|(_, i)| make(i)).collect(),
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_one_another_in_id_order() {
        let ids = ["R10", "R9", "R100", "R11", "R1"];
        let items = || ids.iter().map(|id| (id.to_string(), *id));
        let first = Page {
            after: None,
            limit: 2,
        }
        .of(items(), str::to_string);
        assert_eq!(first.items, ["R1", "R9"]);
        assert_eq!(first.next.as_deref(), Some("R9"));
        let second = Page {
            after: first.next,
            limit: 2,
        }
        .of(items(), str::to_string);
        assert_eq!(second.items, ["R10", "R11"]);
        let last = Page {
            after: second.next,
            limit: 2,
        }
        .of(items(), str::to_string);
        assert_eq!((last.items, last.next), (vec!["R100".to_string()], None));
    }
}
