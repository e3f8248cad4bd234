//! Keyset pagination: the one rule every list of the admin API pages by.
//!
//! A list is ordered by a unique key `(time, id)`, oldest first or newest first. A page asks for
//! the rows strictly after a key ([`PageRequest::after`]) and at most [`PageRequest::limit`] of
//! them; the store fetches one row more than the limit to learn whether another page exists, and
//! [`Page::from_rows`] keeps the limit and names the key of the last row kept as the next
//! position. A row inserted while someone pages is never returned twice and never shifts a row
//! out of a later page (no `OFFSET`), whatever its key.
//!
//! This module holds no SQL and no wire format: the SQL is in `sql.rs` (`push_keyset`), the
//! opaque cursor a client sees is made and checked by the HTTP layer. It must never decide who
//! may read a list: every listing query stays scoped by its tenant whatever the key says.

use portcullis_core::time::Timestamp;

/// The most rows one page holds, whatever the caller asks for.
pub const MAX_PAGE_LIMIT: u32 = 1_000;
/// The rows a page holds when the caller names no limit.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;

/// The second half of a row's key: the table's own unique id (text), or an integer sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyId {
    Text(String),
    Int(i64),
}

/// A row's position in its list: `(time, id)`, unique because the id is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageKey {
    pub at: Timestamp,
    pub id: KeyId,
}

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows strictly after this key in the list's order; `None` = from the start.
    pub after: Option<PageKey>,
    /// At most this many rows (clamped to 1..=[`MAX_PAGE_LIMIT`]).
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: DEFAULT_PAGE_LIMIT,
        }
    }
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The limit the store applies: never 0 and never above [`MAX_PAGE_LIMIT`].
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE_LIMIT)
    }
}

/// One page of a list, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageKey>,
}

impl<T> Page<T> {
    /// The page from the rows a keyset query returned (it asked for one row more than the
    /// limit): keeps at most the limit and, if a row was left over, names the last kept row's
    /// key as the next position.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> PageKey) -> Self {
        let limit = request.effective_limit() as usize;
        if rows.len() <= limit {
            return Self {
                items: rows,
                next: None,
            };
        }
        rows.truncate(limit);
        let next = rows.last().map(key);
        Self { items: rows, next }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

/// A tenant, client or resource server with when it was archived (`None`: it is live).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archivable<T> {
    pub item: T,
    pub archived_at: Option<Timestamp>,
}

/// Whether a list shows archived objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArchivedFilter {
    /// Live objects only (the default).
    #[default]
    Exclude,
    /// Live and archived objects alike.
    Include,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &i64) -> PageKey {
        PageKey {
            at: Timestamp::from_millis(*n),
            id: KeyId::Int(*n),
        }
    }

    #[test]
    fn a_leftover_row_means_a_next_page_starting_after_the_last_kept_row() {
        let p = Page::from_rows(vec![1, 2, 3], &PageRequest::first(2), key);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next, Some(key(&2)));
    }

    #[test]
    fn no_leftover_row_means_the_last_page() {
        let p = Page::from_rows(vec![1, 2], &PageRequest::first(2), key);
        assert_eq!((p.items, p.next), (vec![1, 2], None));
        let p = Page::from_rows(Vec::<i64>::new(), &PageRequest::first(2), key);
        assert_eq!(p.next, None);
    }

    #[test]
    fn the_limit_is_never_zero_nor_above_the_cap() {
        assert_eq!(PageRequest::first(0).effective_limit(), 1);
        assert_eq!(
            PageRequest::first(u32::MAX).effective_limit(),
            MAX_PAGE_LIMIT
        );
        assert_eq!(PageRequest::default().effective_limit(), DEFAULT_PAGE_LIMIT);
    }
}
