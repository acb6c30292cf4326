//! The process allocator: the system's, with large buffers on transparent huge pages.
//!
//! A decode touches a few fresh buffers of the volume's size (coefficients, samples, the
//! output). Each first touch of a 4 KiB page is a fault, and on the virtual machines these
//! tools run on a fault costs microseconds: on a 128³ unpack, page faults and the kernel's
//! page zeroing were ~40% of the time. Asking for huge pages on buffers of 4 MiB or more
//! takes 512 faults down to one (measured: whole `unpack` 1.6× faster). Kernels with THP
//! off ignore the advice; the bytes are the same either way.
use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are advised onto huge pages.
const LARGE: usize = 4 << 20;
/// The x86-64 and aarch64 (4 KiB base pages) transparent huge page size.
const HUGE: usize = 2 << 20;

pub struct HugePages;

fn advise(p: *mut u8, size: usize) {
    if p.is_null() || size < LARGE {
        return;
    }
    // Only whole huge pages inside the allocation: advice outside it could reach memory
    // the allocator hands to others (harmless, but not ours to change).
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize + size) & !(HUGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside the allocation just made; MADV_HUGEPAGE only
        // changes how its pages are backed, never their contents, and a failure (e.g. THP
        // compiled out) leaves the memory as it was.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every call forwards to `System` with the caller's own arguments, so each
// GlobalAlloc contract holds as it does for `System`; `advise` only adds a hint.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        advise(p, layout.size());
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        advise(p, layout.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout)
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        advise(q, new_size);
        q
    }
}
