//! The changes a filtered subscription receives at once, shared by every
//! subscription of its group that receives them, with a slot for one value
//! derived from them: a door encodes the list into frames once and each
//! subscription copies the bytes, instead of every subscription encoding
//! the same changes again.

use std::any::Any;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use super::subscribe::StateChange;

/// Membership changes in offset order (never empty when delivered).
#[derive(Clone)]
pub struct ChangeList(Arc<Inner>);

struct Inner {
    changes: Vec<StateChange>,
    memo: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl ChangeList {
    /// A list of `changes` with an empty memo slot.
    pub fn new(changes: Vec<StateChange>) -> ChangeList {
        ChangeList(Arc::new(Inner {
            changes,
            memo: OnceLock::new(),
        }))
    }

    /// The value `init` derives from these changes, computed once for all
    /// holders of the list. `init` must depend only on the changes. If a
    /// value of another type is memoized, `init`'s value is not kept.
    pub fn memo<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut init = Some(init);
        let stored = self
            .0
            .memo
            .get_or_init(|| Arc::new((init.take().expect("first use"))()));
        match Arc::clone(stored).downcast::<T>() {
            Ok(t) => t,
            Err(_) => Arc::new((init.take().expect("not run"))()),
        }
    }

    /// Whether two lists are the same shared value (not just equal).
    pub fn ptr_eq(a: &ChangeList, b: &ChangeList) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for ChangeList {
    type Target = [StateChange];

    fn deref(&self) -> &[StateChange] {
        &self.0.changes
    }
}

impl std::fmt::Debug for ChangeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_memo() {
        let a = ChangeList::new(vec![StateChange::Reset { offset: 3 }]);
        let b = a.clone();
        let mut runs = 0;
        let x = a.memo(|| {
            runs += 1;
            7u32
        });
        let y = b.memo(|| {
            runs += 1;
            8u32
        });
        assert_eq!((*x, *y, runs), (7, 7, 1));
        assert_eq!(
            *b.memo(|| "other type"),
            "other type",
            "not kept, still derived"
        );
        assert_eq!(b.len(), 1);
    }
}
