//! The binary's allocator: mimalloc, called directly.
//!
//! The `mimalloc` crate's `GlobalAlloc` routes every allocation through
//! `mi_malloc_aligned`, whose fast path looks the page up again and tests the alignment:
//! about 45 instructions per allocation in the `churn` benchmark, against about 20 for
//! `mi_malloc` (docs/performance.md, "the allocator"). Almost every allocation of the VM
//! (strings, `Rc` boxes, lists of values) asks for an alignment of 8 or less, which every
//! mimalloc block has, so those go to `mi_malloc`/`mi_zalloc`/`mi_realloc`; larger
//! alignments keep the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has whatever its size (its smallest size class is
/// one machine word, and every size class is a multiple of it).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc as a [`GlobalAlloc`], with the unaligned entry points where they suffice.
pub(crate) struct MiMalloc;

// SAFETY: every method forwards to mimalloc with a size and, where the block must be
// aligned more than a word, the alignment; `mi_free`/`mi_realloc` accept any block either
// family returned, as mimalloc documents.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            unsafe { mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            unsafe {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes_through_realloc() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 24, 100, 1000, 70_000] {
                let layout = Layout::from_size_align(size, align).expect("a layout");
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    p.write_bytes(0xab, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size} aligned {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xab), "bytes kept");
                    a.dealloc(
                        q,
                        Layout::from_size_align(size * 3, align).expect("a layout"),
                    );
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc {size} aligned {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "zeroed");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
