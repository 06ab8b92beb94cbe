//! The memory budget (`policy: max_memory`, `aether run --max-memory`): a per-thread
//! ledger of live heap bytes, kept by a counting wrapper around the global allocator, and
//! the check every growing value makes before it allocates.
//!
//! The model (docs/reliability.md, "Memory budget"):
//!
//! - [`Counting`] wraps the binary's allocator and adds each allocation's size to a
//!   thread-local counter and subtracts each free: one add on a thread-local word per
//!   allocation, nothing in the instruction loop. Freed memory is given back, so a loop
//!   that allocates and drops a lot stays within any budget its live data fits in.
//! - A run opens a [`Scope`] on its thread: the budget counts what the thread allocates
//!   after that (everything the run holds: values, fibers' stacks, the host's buffers on
//!   this thread). Runs on other threads (`classify --jobs`) have ledgers of their own.
//! - Before a value grows by an amount proportional to its input (concatenation, a list or
//!   map that reallocates, a copy on write, `repeat`, `join`, `range`, `json_decode`, ...)
//!   the code calls [`reserve`] with the bytes it is about to allocate: a growth that would
//!   cross the budget is refused before the allocator sees it, so the run fails cleanly
//!   instead of the process aborting. Small allocations between such checks are caught by
//!   the VM's periodic budget check ([`over_budget`], every 1024 instructions), and so are
//!   requests under [`SMALL`] bytes, which [`reserve`] lets through without reading the
//!   ledger: such a request cannot abort the process, it is counted like any other
//!   allocation, and the run stops at the next check once the live bytes are past the
//!   budget (between two checks run at most 1024 instructions and one loop body, so the
//!   overshoot from small requests is at most a few hundred KiB).
//! - Without the counting allocator (a library user's binary), live bytes read as 0 and
//!   only single growths larger than the budget are refused.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

use aether_check::spec::format_size;

use crate::value::ValueError;

thread_local! {
    /// Bytes allocated and not freed by this thread (frees of memory another thread
    /// allocated count here too, so it can go below a run's starting point).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static LEDGER: Cell<Ledger> = const { Cell::new(Ledger::NONE) };
}

/// The budget of the run on this thread.
#[derive(Clone, Copy)]
struct Ledger {
    /// Live bytes when the run started.
    base: isize,
    /// The budget in bytes (`usize::MAX`: none).
    limit: usize,
    /// Set when a growth was refused, until the VM reads it ([`take_refused`]).
    refused: bool,
}

impl Ledger {
    const NONE: Ledger = Ledger {
        base: 0,
        limit: usize::MAX,
        refused: false,
    };
}

/// Requests under this many bytes pass [`reserve`] without a look at the ledger (see the
/// module docs): a string concatenation or a map insertion of a few words pays one compare.
pub const SMALL: usize = 256;

#[inline(always)]
fn add_live(bytes: isize) {
    // A const-initialised thread-local without a destructor is always accessible.
    let _ = LIVE.try_with(|c| c.set(c.get().wrapping_add(bytes)));
}

#[inline(always)]
fn size(layout: Layout) -> isize {
    // A layout's size never exceeds isize::MAX.
    layout.size() as isize
}

/// A global allocator that keeps the per-thread count of live bytes the budget reads:
/// `#[global_allocator] static A: Counting<System> = Counting(System);`.
pub struct Counting<A>(pub A);

// SAFETY: every method forwards to the wrapped allocator with the same arguments and
// only adds bookkeeping on a thread-local integer (which allocates nothing).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add_live(size(layout));
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add_live(size(layout));
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        add_live(-size(layout));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add_live((new_size as isize).wrapping_sub(size(layout)));
        }
        p
    }
}

/// Bytes this thread has allocated and not freed (0 without [`Counting`]).
pub fn live() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// A run's budget on this thread, from [`Scope::start`] until it is dropped (which puts
/// back the ledger that was there before).
pub struct Scope {
    previous: Ledger,
}

impl Scope {
    /// Start counting a run with a budget of `limit` bytes (`None`: no budget).
    pub fn start(limit: Option<u64>) -> Scope {
        let ledger = Ledger {
            base: live(),
            limit: limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)),
            refused: false,
        };
        Scope {
            previous: LEDGER.replace(ledger),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        LEDGER.set(self.previous);
    }
}

/// The bytes the current run holds (live bytes since its scope started; never negative).
fn used(ledger: &Ledger) -> usize {
    usize::try_from(live().saturating_sub(ledger.base)).unwrap_or(0)
}

/// Refuse to allocate `bytes` more when that would cross the run's budget: the error
/// names the budget, what is in use and what was asked. Free without a budget, and for
/// fewer than [`SMALL`] bytes (the periodic check catches those).
#[inline]
pub fn reserve(bytes: usize) -> Result<(), ValueError> {
    if bytes < SMALL {
        return Ok(());
    }
    reserve_large(bytes)
}

fn reserve_large(bytes: usize) -> Result<(), ValueError> {
    let ledger = LEDGER.get();
    if ledger.limit == usize::MAX {
        return Ok(());
    }
    let used = used(&ledger);
    if used.saturating_add(bytes) <= ledger.limit {
        return Ok(());
    }
    LEDGER.set(Ledger {
        refused: true,
        ..ledger
    });
    Err(ValueError::new(format!(
        "the memory budget of {} ran out: this needs {} more with {} in use (policy max_memory, --max-memory)",
        format_size(ledger.limit as u64),
        format_size(bytes as u64),
        format_size(used as u64)
    )))
}

/// [`reserve`] for `n` items of `item` bytes each.
#[inline]
pub fn reserve_items(n: usize, item: usize) -> Result<(), ValueError> {
    reserve(n.saturating_mul(item))
}

/// An error (marked as the budget's) when the run's live bytes are past its budget: for a
/// native that built something whose size it could not know before (`json_decode`).
pub fn check() -> Result<(), ValueError> {
    match over_budget() {
        Some(message) => {
            LEDGER.set(Ledger {
                refused: true,
                ..LEDGER.get()
            });
            Err(ValueError::new(message))
        }
        None => Ok(()),
    }
}

/// The message of a run whose live bytes are past its budget (small allocations add up
/// between the checks [`reserve`] makes); the VM asks every 1024 instructions.
pub(crate) fn over_budget() -> Option<String> {
    let ledger = LEDGER.get();
    if ledger.limit == usize::MAX {
        return None;
    }
    let used = used(&ledger);
    (used > ledger.limit).then(|| {
        format!(
            "the memory budget of {} ran out: {} in use (policy max_memory, --max-memory)",
            format_size(ledger.limit as u64),
            format_size(used as u64)
        )
    })
}

/// Whether a growth was refused since the last call (the error being wrapped is the
/// budget's, not the script's).
pub(crate) fn take_refused() -> bool {
    let ledger = LEDGER.get();
    if ledger.refused {
        LEDGER.set(Ledger {
            refused: false,
            ..ledger
        });
    }
    ledger.refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counting_allocator_tracks_live_bytes_on_this_thread() {
        let before = live();
        let v: Vec<u8> = Vec::with_capacity(1 << 20);
        assert!(live() - before >= 1 << 20);
        drop(v);
        assert!(live() - before < 1 << 20);
    }

    #[test]
    fn a_growth_past_the_budget_is_refused_and_marked() {
        let scope = Scope::start(Some(1 << 20));
        assert!(reserve(1000).is_ok());
        let e = reserve(2 << 20).unwrap_err();
        assert!(
            e.message.contains("memory budget of 1 MiB"),
            "{}",
            e.message
        );
        assert!(take_refused());
        assert!(!take_refused());
        let held: Vec<u8> = vec![1; 2 << 20];
        assert!(over_budget().is_some());
        drop(held);
        assert!(over_budget().is_none());
        drop(scope);
        assert!(reserve(usize::MAX).is_ok(), "no budget outside a scope");
    }

    #[test]
    fn small_requests_pass_unread_but_their_bytes_still_stop_the_run() {
        let scope = Scope::start(Some(1 << 20));
        // Many small allocations, each let through by `reserve`, push the live bytes past
        // the budget: the periodic check sees it, and a large request is refused.
        let mut held: Vec<Box<[u8; 64]>> = Vec::new();
        while over_budget().is_none() {
            assert!(reserve(SMALL - 1).is_ok());
            held.push(Box::new([7; 64]));
            assert!(
                held.len() < 1 << 20,
                "the live bytes never reached the budget"
            );
        }
        assert!(reserve(SMALL - 1).is_ok(), "small requests are not read");
        assert!(reserve(SMALL).is_err(), "a request of SMALL bytes is");
        assert!(take_refused());
        drop(held);
        assert!(over_budget().is_none());
        drop(scope);
    }
}
