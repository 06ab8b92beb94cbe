//! Transactions: one open at a time, owned by the fiber that opened it and the fibers it
//! starts; rollback of held events and of the host's savepoint.

use super::*;
use crate::host::TxFailure;

impl<'p, W: Write> Vm<'p, W> {
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

    /// Whether fiber `f` runs inside the open transaction (its own, or one it joined or was
    /// started in): it must not wait, and [`MAX_TRANSACTION`] bounds it.
    pub(super) fn in_open_tx(&self, f: &Fiber) -> bool {
        !f.tx.is_empty() || f.in_tx.is_some_and(|o| self.tx.owner == Some(o))
    }

    /// Why fiber `f` may not wait (`None`: it may); `what` says which wait, and where. A
    /// transaction holds the state database's write lock: waiting with it would make every
    /// other run's writes wait too.
    pub(super) fn wait_refused(&self, f: &Fiber, what: &str) -> Option<String> {
        self.in_open_tx(f).then(|| {
            format!(
                "{what}: a transaction must not wait while it holds the state database's write lock (the transaction is rolled back)"
            )
        })
    }

    /// The open transaction `f` runs in has passed [`MAX_TRANSACTION`].
    pub(super) fn tx_overran(&self, f: &Fiber, now: Instant) -> Option<String> {
        let opened = self.tx.opened?;
        (now.duration_since(opened) > MAX_TRANSACTION && self.in_open_tx(f)).then(|| {
            format!(
                "the transaction was open longer than {}, the limit that keeps other runs from finding the state database busy (it is rolled back): do slow work outside `transaction:`",
                format_duration(MAX_TRANSACTION.as_secs_f64() * 1000.0)
            )
        })
    }

    /// `TxBegin` for fiber `id` once no other fiber's transaction is in the way: open the
    /// host's transaction, or join the one `f` runs in.
    pub(super) fn begin_block(&mut self, id: u32, f: &mut Fiber) -> Result<(), HostError> {
        let joins = self.tx.owner.is_some_and(|o| o != id);
        if !joins {
            self.host.begin()?;
            self.tx.owner = Some(id);
            self.tx.opened = Some(Instant::now());
        }
        f.tx.push(Vec::new());
        f.joined.push(joins);
        Ok(())
    }

    /// `TxCommit` of fiber `id`'s innermost block (`span`: the block's): commit the host's
    /// transaction when the block opened it, and publish or pass on the events it held.
    /// `Err`: the commit failed (or, replayed, is recorded as failed): the block is still
    /// open, and the fiber's failure rolls it back ([`Vm::roll_back`]) with that error.
    pub(super) fn commit_block(
        &mut self,
        id: u32,
        f: &mut Fiber,
        span: Option<Span>,
    ) -> Result<(), HostError> {
        let joined = f.joined.last().copied().unwrap_or(false);
        if joined {
            f.joined.pop();
            // A block that joined another fiber's transaction: its events go to the
            // enclosing level, or to the owner's, and commit with it.
            let held = f.tx.pop().unwrap_or_default();
            match f.tx.last_mut() {
                Some(outer) => outer.extend(held),
                None => {
                    for e in held {
                        self.record(f, &e.kind, e.fields, e.span);
                    }
                }
            }
            return Ok(());
        }
        self.host.commit(&f.path)?;
        f.joined.pop();
        if f.tx.len() == 1 {
            self.release_tx(id);
        }
        let held = f.tx.pop().unwrap_or_default();
        match f.tx.last_mut() {
            Some(outer) => outer.extend(held),
            None => {
                let n = held.len();
                for e in held {
                    self.publish(&e.kind, e.fields, e.span);
                }
                let fields = map_of(vec![
                    ("outcome", Value::from("commit")),
                    ("events", Value::Int(n as i64)),
                ]);
                self.publish("transaction", fields, span);
            }
        }
        Ok(())
    }

    /// The transaction of `owner` has ended: fibers waiting to write go on.
    pub(super) fn release_tx(&mut self, owner: u32) {
        if self.tx.owner == Some(owner) {
            self.tx.owner = None;
            self.tx.opened = None;
            let waiting: Vec<u32> = self.tx.waiters.drain(..).collect();
            for w in waiting {
                if self.sched.fibers.contains_key(&w) {
                    self.sched.ready.push_back(w);
                }
            }
        }
    }

    /// Undo the open transactions of a fiber that failed (with `error`) or was stopped
    /// (`None`), dropping the events they held, and record that. The host learns the error
    /// (a durable run journals why the block rolled back).
    pub(super) fn roll_back(&mut self, id: u32, f: &Fiber, error: Option<&VmError>) {
        if f.tx.is_empty() {
            return;
        }
        let why = error.map(|e| TxFailure {
            fiber: &f.path,
            class: e.kind(),
            message: e.message(),
            line: self.line_of(e.span()),
        });
        let mut dropped = 0;
        for (held, joined) in f.tx.iter().zip(&f.joined).rev() {
            dropped += held.len();
            if !joined {
                self.host.rollback(why.as_ref());
            }
        }
        self.release_tx(id);
        let span = self.program.span_at(index_u32(f.ip.saturating_sub(1)));
        let fields = map_of(vec![
            ("outcome", Value::from("rollback")),
            ("events_dropped", Value::Int(dropped as i64)),
        ]);
        self.publish("transaction", fields, span);
    }
}
