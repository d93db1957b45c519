//! The process's allocator: mimalloc for small blocks, the system allocator (glibc) for large
//! ones, chosen by size. The `quiver` binary and the Python extension (`quiver-py`, whose Rust
//! allocations it serves inside the Python process) both install it.
//!
//! Why two: serving a request makes a few hundred small allocations (JSON, keys, rows), and
//! glibc's malloc took about a fifth of the server's CPU; with mimalloc the Redis-backed server
//! answered 21% more requests per second and the embedded one 29% more (bench/README.md). But
//! the batch paths (point-in-time joins, materialization) grow vectors of hundreds of megabytes,
//! where glibc's `mremap` resizes a mapping in place while mimalloc copies it and keeps freed
//! segments around: with mimalloc alone, the 10M x 1M join took 20% longer with 20% more peak
//! memory. Splitting by size gives each path the allocator it does best with.
//!
//! Soundness: a block's allocator follows from its layout's size alone, and Rust passes
//! `dealloc` and `realloc` the layout the block was allocated with, so every block is freed by
//! the allocator that made it. A `realloc` that crosses the threshold moves the block between
//! allocators (allocate, copy, free).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of at least this many bytes come from the system allocator.
const LARGE: usize = 256 * 1024;

/// Blocks of at least this many bytes ask for transparent huge pages.
const HUGE: usize = 4 << 20;

/// See the module docs.
pub struct SplitAlloc;

/// Asks the kernel to back the whole 2 MiB pages inside a large block with huge pages. Advice
/// only: where transparent huge pages are off, nothing changes.
#[inline]
fn advise_huge(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if size >= HUGE && !ptr.is_null() {
        const PAGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + size) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside a block this process owns; MADV_HUGEPAGE changes
            // how pages are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
}

/// For a process that runs one job and exits: glibc keeps what the process frees (up to 1 GiB)
/// for reuse, and serves blocks up to 32 MiB from its heap instead of a fresh mapping each
/// (which it unmaps on free). Measured on the 10M x 1M join: system time 450 to 375 ms, with
/// the huge pages above (bench/README.md). Not for the server, whose memory should shrink back
/// after a burst.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's tuning parameters; called before the threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[inline]
fn small(size: usize) -> bool {
    size < LARGE
}

// SAFETY (for every method): each call is forwarded to exactly one of two sound allocators,
// chosen by `layout.size()`; the caller's layout for `dealloc`/`realloc` is the one used at
// allocation, so the same allocator is chosen again.
unsafe impl GlobalAlloc for SplitAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's (non-zero-size) layout.
        unsafe {
            if small(layout.size()) {
                MiMalloc.alloc(layout)
            } else {
                let p = System.alloc(layout);
                advise_huge(p, layout.size());
                p
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if small(layout.size()) {
                MiMalloc.alloc_zeroed(layout)
            } else {
                let p = System.alloc_zeroed(layout);
                advise_huge(p, layout.size());
                p
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator that `layout.size()` selects.
        unsafe {
            if small(layout.size()) {
                MiMalloc.dealloc(ptr, layout)
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (from_small, to_small) = (small(layout.size()), small(new_size));
        // SAFETY: same-allocator resizes are forwarded; a move between allocators allocates
        // `new_size` bytes with the old alignment (valid: the caller guarantees `new_size`
        // rounded to `align` does not overflow), copies the bytes both blocks hold, and frees
        // the old block with its own allocator.
        unsafe {
            match (from_small, to_small) {
                (true, true) => MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => {
                    let p = System.realloc(ptr, layout, new_size);
                    if new_size > layout.size() {
                        advise_huge(p, new_size);
                    }
                    p
                }
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new
                }
            }
        }
    }
}

/// This crate's test binary runs on the split allocator too.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: SplitAlloc = SplitAlloc;

#[cfg(test)]
mod tests {
    /// Blocks that grow and shrink across the threshold keep their bytes.
    #[test]
    fn blocks_keep_their_bytes_across_the_threshold() {
        let mut v: Vec<u8> = Vec::new();
        for i in 0..(super::LARGE * 3) {
            v.push((i % 251) as u8);
        }
        assert!(v.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        v.truncate(1000);
        v.shrink_to_fit(); // large -> small
        assert!(v.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        v.resize(super::LARGE * 2, 7); // small -> large
        assert_eq!(v[999], (999 % 251) as u8);
        assert_eq!(v[super::LARGE], 7);
        let z = vec![0u64; super::LARGE]; // alloc_zeroed, large
        assert!(z.iter().all(|x| *x == 0));
    }
}
