//! Transactions: one open at a time, owned by the fiber that opened it and the fibers it
//! starts; rollback of held events and of the host's savepoint.

use super::*;

impl<'p, W: Write> Vm<'p, W> {
    /// Undo the open transactions of a fiber that failed or was stopped, dropping the
    /// events they held, and record that.
    /// The transaction context a fiber started by `parent` (with context `parent_in_tx`)
    /// runs in.
    pub(super) fn tx_context(&self, parent: u32, parent_in_tx: Option<u32>) -> Option<u32> {
        match self.tx.owner {
            Some(o) if o == parent || parent_in_tx == Some(o) => Some(o),
            _ => None,
        }
    }

    /// Whether fiber `id` (with context `in_tx`) must wait for another fiber's open
    /// transaction before it writes.
    pub(super) fn must_wait_for_tx(&self, id: u32, in_tx: Option<u32>) -> bool {
        self.tx.owner.is_some_and(|o| o != id && in_tx != Some(o))
    }

    /// The transaction of `owner` has ended: fibers waiting to write go on.
    pub(super) fn release_tx(&mut self, owner: u32) {
        if self.tx.owner == Some(owner) {
            self.tx.owner = None;
            let waiting: Vec<u32> = self.tx.waiters.drain(..).collect();
            for w in waiting {
                if self.sched.fibers.contains_key(&w) {
                    self.sched.ready.push_back(w);
                }
            }
        }
    }

    pub(super) fn roll_back(&mut self, id: u32, f: &Fiber) {
        if f.tx.is_empty() {
            return;
        }
        let mut dropped = 0;
        for (held, joined) in f.tx.iter().zip(&f.joined).rev() {
            dropped += held.len();
            if !joined {
                self.host.rollback();
            }
        }
        self.release_tx(id);
        let span = f
            .frames
            .last()
            .and_then(|fr| self.program.span_at(index_u32(fr.ip.saturating_sub(1))));
        let fields = map_of(vec![
            ("outcome", Value::from("rollback")),
            ("events_dropped", Value::Int(dropped as i64)),
        ]);
        self.publish("transaction", fields, span);
    }
}
